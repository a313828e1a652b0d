"""Streaming a corpus per host: file shards, splits, batched tokenization, the streamed UL2R tasks, resume."""
from __future__ import annotations

import json
import shutil
import zlib

import numpy as np
import pytest
import seqio

from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.core.seekable import is_seekable
from flan_ul2r.data.corpus.document_stream import DocumentSource, in_split, tokenize_documents
from flan_ul2r.data.corpus.token_cache import build_corpus
from flan_ul2r.data.ul2 import corpus_tasks
from flan_ul2r.data.ul2.cached_tasks import LazyCorpus
from flan_ul2r.data.ul2.corpus_tasks import StreamCorpus, corpus_for, register_corpus_mixture
from flan_ul2r.data.vocab.vocabularies import get_vocabulary

VOCAB = get_vocabulary("byte")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    docs = {}
    for f in range(4):
        lines = [f"document {f}-{i}: " + " ".join(["word"] * (5 + (7 * i + f) % 60)) for i in range(120)]
        (folder / f"part-{f}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))
        docs[f] = lines
    return folder, docs


def read(source, split, **kw):
    return [x["text"].decode() for x in source.get_dataset(split, **kw).as_numpy_iterator()]


def test_each_host_reads_only_its_files_and_splits_partition_the_documents(files):
    folder, docs = files
    source = DocumentSource(f"jsonl:{folder}/part-*.jsonl")
    assert len(source.list_shards("train")) == 4
    host = [read(source, "train", shuffle=False, shard_info=seqio.ShardInfo(h, 2)) for h in range(2)]
    assert {t.split(":")[0].split("-")[0][-1] for t in host[0]} == {"0", "2"}  # files 0 and 2
    assert {t.split(":")[0].split("-")[0][-1] for t in host[1]} == {"1", "3"}
    validation = read(source, "validation", shuffle=False)
    everything = [t for f in range(4) for t in docs[f]]
    assert sorted(host[0] + host[1] + validation) == sorted(everything)
    assert 0 < len(validation) < 0.05 * len(everything)
    provenance = {t: f"{folder}/part-{f}.jsonl:{i + 1}" for f in range(4) for i, t in enumerate(docs[f])}
    assert all(in_split(provenance[t], "validation") for t in validation)  # the documented rule


def test_cached_and_streamed_corpora_hold_out_the_same_documents(files, tmp_path, monkeypatch):
    """One validation rule: switching `ul2r_corpus.cache` moves no document between train and validation,
    nor does moving the files to another folder. Reference: crc32 of "file-name:line" computed here."""
    monkeypatch.setenv("FLAN_UL2R_CACHE", str(tmp_path / "cache"))
    folder, docs = files
    moved = tmp_path / "elsewhere"
    shutil.copytree(folder, moved)
    expected = {t for f in range(4) for i, t in enumerate(docs[f])
                if zlib.crc32(f"part-{f}.jsonl:{i + 1}".encode()) % 100 == 0}
    assert 0 < len(expected) < 20
    for where in (folder, moved):
        spec = f"jsonl:{where}/part-*.jsonl"
        streamed = read(DocumentSource(spec), "validation", shuffle=False)
        cached = build_corpus(spec, VOCAB).split("validation")
        cached_texts = [VOCAB.decode(cached.document(i).tolist()) for i in range(cached.num_documents)]
        assert sorted(streamed) == sorted(cached_texts) == sorted(expected)


def test_shuffled_reading_is_seeded(files):
    folder, _ = files
    source = DocumentSource(f"jsonl:{folder}/part-*.jsonl")
    a, b = read(source, "train", seed=3), read(source, "train", seed=3)
    assert a == b and read(source, "train", seed=4) != a
    assert sorted(a) == sorted(read(source, "train", shuffle=False))


@pytest.mark.parametrize("spec", ["byte", "bpe"])
def test_batched_tokenization_equals_encode(files, tmp_path, spec):
    if spec == "bpe":
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(["document word"] * 50, trainers.BpeTrainer(vocab_size=60,
                                special_tokens=["<unk>", "</s>"]))
        tok.save(str(tmp_path / "tokenizer.json"))
        vocab = get_vocabulary(f"hf:{tmp_path / 'tokenizer.json'}")
    else:
        vocab = VOCAB
    folder, _ = files
    texts = read(DocumentSource(f"jsonl:{folder}/part-0.jsonl"), "train", shuffle=False)
    source = DocumentSource(f"jsonl:{folder}/part-0.jsonl")
    ds = tokenize_documents(source.get_dataset("train", shuffle=False), {"targets": seqio.Feature(vocab)})
    got = [x["targets"].tolist() for x in ds.as_numpy_iterator()]
    assert got == [list(vocab.encode(t)) for t in texts]


@pytest.mark.slow
def test_streamed_ul2r_tasks_train_through_the_seqio_path_and_resume(files):
    folder, _ = files
    corpus = corpus_for(f"jsonl:{folder}/part-*.jsonl", VOCAB, cache=False)
    assert isinstance(corpus, StreamCorpus)
    register_corpus_mixture("streamtoy", corpus, VOCAB)
    mix = seqio.get_mixture_or_task("streamtoy")
    assert len(mix.tasks) == 4 and not any(is_seekable(t) for t in mix.tasks)
    lengths = {"inputs": 64, "targets": 64}
    it = make_train_iterator("streamtoy", lengths, 2, seed=0, shard_index=1, num_shards=2)
    first = [next(it) for _ in range(2)]
    state = json.loads(json.dumps(it.state()))
    rest = [next(it) for _ in range(2)]
    resumed = make_train_iterator("streamtoy", lengths, 2, seed=0, shard_index=1, num_shards=2, state=state)
    for a, b in zip(rest, [next(resumed) for _ in range(2)]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert all((b["decoder_segment_ids"] > 0).mean() > 0.9 for b in first + rest)  # concatenated: full rows
    ex = next(make_train_iterator("streamtoy", lengths, 1, seed=0, with_strings=True).examples())
    assert ex["task"].decode().startswith("streamtoy_")


def test_cache_auto_follows_the_size_limit(files, monkeypatch):
    folder, _ = files
    spec = f"jsonl:{folder}/part-*.jsonl"
    assert isinstance(corpus_for(spec, VOCAB, cache="auto"), LazyCorpus)  # small: tokenized once, cached
    monkeypatch.setattr(corpus_tasks, "CACHE_LIMIT_BYTES", 10)
    monkeypatch.setattr(corpus_tasks, "_CORPORA", {})
    assert isinstance(corpus_for(spec, VOCAB, cache="auto"), StreamCorpus)
    with pytest.raises(ValueError, match="ul2r_corpus.cache='sometimes'"):
        corpus_for(spec, VOCAB, cache="sometimes")
    with pytest.raises(FileNotFoundError, match="pattern matches no file"):
        corpus_for(f"jsonl:{folder}/nothing-*.jsonl", VOCAB, cache="auto")
