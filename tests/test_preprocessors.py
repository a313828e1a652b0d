"""Chunking (random access and streaming) against brute force; ul2_denoise's options and denoiser shares."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import seqio
import tensorflow as tf

from flan_ul2r.data.ul2 import chunking
from flan_ul2r.data.ul2.cached_tasks import array_corpus
from flan_ul2r.data.ul2.chunking import ChunkTable, split_stream
from flan_ul2r.data.ul2.denoisers import UL2R, raw_length
from flan_ul2r.data.ul2.preprocessors import ul2_denoise
from tests._denoise_toy import EOS, VOCAB, reconstruct, toy_documents

FEATURES = {"inputs": seqio.Feature(VOCAB, add_eos=False), "targets": seqio.Feature(VOCAB, add_eos=False)}


def brute_chunks(docs, raw, separator, concatenate):
    """Independent reference: T5's concatenate-then-split (separator after each document), or per document."""
    docs = [np.asarray(d) for d in docs if len(d)]
    if not concatenate:
        return [d[i:i + raw] for d in docs for i in range(0, len(d), raw)]
    stream = np.concatenate([np.append(d, separator) if separator is not None else d for d in docs])
    return [stream[i:i + raw] for i in range(0, len(stream), raw)]


@pytest.mark.parametrize("concatenate,separator", [(True, EOS), (True, None), (False, EOS)])
@pytest.mark.parametrize("in_graph", [True, False])
def test_chunk_table_is_the_brute_force_split(monkeypatch, concatenate, separator, in_graph):
    docs = toy_documents(25, seed=3)
    if not in_graph:
        monkeypatch.setattr(chunking, "IN_GRAPH_TOKENS", 0)  # the numpy_function path of big corpora
    corpus = array_corpus(docs)
    table = ChunkTable(corpus.tokens, corpus.starts, corpus.lengths, 700, separator_id=separator,
                       concatenate=concatenate)
    expected = brute_chunks(docs, 700, separator, concatenate)
    assert table.num_records == len(expected)
    for i in (0, 1, len(expected) // 2, len(expected) - 1):
        assert table.fetch(tf.constant(i, tf.int64)).numpy().tolist() == expected[i].tolist()
        assert table.fetch_numpy(i).tolist() == expected[i].tolist()


def test_split_stream_gives_each_branch_its_own_concatenation():
    docs = [d for d in toy_documents(30, seed=4) if len(d)]
    branches = [i % 3 % 2 for i in range(len(docs))]  # documents 0, 3, 4, 6, ... to branch 0
    ds = tf.data.Dataset.from_generator(lambda: ((d, b) for d, b in zip(docs, branches)),
                                        output_signature=(tf.TensorSpec([None], tf.int32),
                                                          tf.TensorSpec([], tf.int32)))
    got = list(split_stream(ds, [500, 333], separator_id=EOS).as_numpy_iterator())
    for b, raw in ((0, 500), (1, 333)):
        mine = [t.tolist() for t, branch in got if branch == b]
        expected = brute_chunks([d for d, x in zip(docs, branches) if x == b], raw, EOS, True)
        assert mine == [e.tolist() for e in expected]


def denoised(docs, lengths, seed=0, **options):
    ds = tf.data.Dataset.from_generator(lambda: ({"targets": d} for d in docs),
                                        output_signature={"targets": tf.TensorSpec([None], tf.int32)})
    with seqio.utils.map_seed_manager(seed):
        out = ul2_denoise(ds, lengths, FEATURES, **options)
    return list(out.as_numpy_iterator())


@pytest.mark.slow
def test_several_denoisers_in_one_task_follow_the_weights():
    # Equal-length documents: each goes to one denoiser with probability ~ weight x raw length, so the
    # share of *examples* is the weight. Tolerance: 4 standard deviations of that share for 3000
    # documents, estimated by simulating the document draw in numpy (independent of the TF code).
    rng = np.random.default_rng(0)
    docs = [rng.integers(3, 200, 300).astype(np.int32) for _ in range(3000)]
    lengths = {"inputs": 256, "targets": 256}
    rows = denoised(docs, lengths, denoisers=UL2R)
    counts = Counter(r["denoiser"].decode() for r in rows)
    raws = np.array([raw_length(d, 512) for d in UL2R])
    p = np.array([d.weight for d in UL2R]) * raws
    draws = rng.multinomial(3000, p / p.sum(), size=4000) * 300 / raws  # examples per denoiser
    sd = (draws / draws.sum(1, keepdims=True)).std(0)
    for d, s in zip(UL2R, sd):
        assert abs(counts[d.name] / len(rows) - d.weight) < 4 * s, (d.name, counts, s)
    for r in rows[:300]:
        assert len(r["inputs"]) + len(r["targets"]) <= 512
        assert len(reconstruct(r["inputs"], r["targets"])) <= raw_length(
            next(d for d in UL2R if d.name == r["denoiser"].decode()), 512)


def test_eos_after_inputs_and_per_document_options():
    docs = [d for d in toy_documents(12, seed=6) if len(d)]
    lengths = {"inputs": 128, "targets": 128}
    x = UL2R[2]
    for r in denoised(docs, lengths, denoisers=[x], eos_after_inputs=True):
        assert r["inputs"][-1] == EOS and len(r["inputs"]) + len(r["targets"]) <= 256
        assert len(reconstruct(r["inputs"][:-1], r["targets"])) <= raw_length(x, 256, eos_after_inputs=True)
    per_doc = denoised(docs, lengths, denoisers=[x], concatenate=False)
    got = [reconstruct(r["inputs"], r["targets"]) for r in per_doc]
    assert got == [c.tolist() for c in brute_chunks(docs, raw_length(x, 256), None, False)]


def test_missing_feature_is_named():
    ds = tf.data.Dataset.from_tensors({"text": tf.constant([1, 2, 3])})
    with pytest.raises(ValueError, match="no feature 'targets'"):
        ul2_denoise(ds, {"inputs": 8, "targets": 8}, FEATURES)
    with pytest.raises(ValueError, match="feature_key='text' is not an output feature"):
        ul2_denoise(ds, {"inputs": 8, "targets": 8}, FEATURES, feature_key="text")
