"""Built-in UL2R tasks: records = the concatenated corpus; seqio view = preprocessor over the same chunks."""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
import seqio
import tensorflow as tf

from flan_ul2r.data.core.seekable import seekable_example
from flan_ul2r.data.ul2.cached_tasks import array_corpus, register_lm_task, register_ul2r_mixture
from flan_ul2r.data.ul2.denoisers import UL2, UL2R, raw_length
from tests._denoise_toy import EOS, VOCAB, reconstruct, toy_documents
from tests._library_helpers import get_seekable_task

LENGTHS = {"inputs": 256, "targets": 256}


@pytest.fixture(scope="module")
def docs():
    d = toy_documents(40, seed=5)
    d[3:3] = [np.zeros(0, np.int32)]
    d.append(np.zeros(0, np.int32))
    names = toy_names(len(d), HELD_AT)
    register_ul2r_mixture("tasktoy", array_corpus(d, names), VOCAB, UL2R)
    register_ul2r_mixture("tasktoy_doc", array_corpus(d, names), VOCAB, UL2R, concatenate=False)
    register_ul2r_mixture("tasktoy2", array_corpus(d, names), VOCAB, UL2)
    register_lm_task("tasktoy_lm", array_corpus(d, names), VOCAB)
    return d


HELD_AT = (7, 30)  # the toy documents named so that the validation rule holds them out


def toy_names(n, held_at):
    """Provenances "toy.txt:K" for n documents, those at `held_at` (and only those) with crc32 = 0 mod 100
    (the documented rule, computed here)."""
    held = lambda k: zlib.crc32(f"toy.txt:{k}".encode()) % 100 == 0
    ks = itertools.count(1)
    pick = lambda want: next(f"toy.txt:{k}" for k in ks if held(k) == want)
    return [pick(i in held_at) for i in range(n)]


def held_out(docs):
    """(document, held out) of the non-empty documents."""
    return [(x, i in HELD_AT) for i, x in enumerate(docs) if len(x)]


def train_documents(docs):
    return [x for x, h in held_out(docs) if not h]


def records(name, split="train"):
    task = get_seekable_task(name)
    n = task.num_records(split, LENGTHS)
    return [task.fetch(tf.constant(i, tf.int64), split, LENGTHS)["tokens"].numpy() for i in range(n)]


@pytest.mark.parametrize("denoiser", [UL2R[3], UL2R[0]], ids=lambda d: d.name)
def test_records_are_the_eos_separated_concatenation_cut_to_raw_length(docs, denoiser):
    got = records(f"tasktoy_{denoiser.name}")
    raw = raw_length(denoiser, 512)
    train = train_documents(docs)
    stream = np.concatenate([np.append(x, EOS) for x in train])  # independent: T5's concat, EOS-separated
    assert np.array_equal(np.concatenate(got), stream)
    assert all(len(r) == raw for r in got[:-1]) and 0 < len(got[-1]) <= raw
    assert len(got) == -(-len(stream) // raw)


def test_per_document_option_cuts_each_document(docs):
    got = records("tasktoy_doc_x_3_50")
    raw = raw_length(UL2R[3], 512)
    expected = [x[i:i + raw] for x in train_documents(docs) for i in range(0, len(x), raw)]
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_validation_split_holds_the_held_out_documents(docs):
    held = [x for x, h in held_out(docs) if h]
    got = records("tasktoy_lm", "validation")
    assert np.array_equal(np.concatenate(got), np.concatenate([np.append(x, EOS) for x in held]))


def test_seqio_view_denoises_the_same_chunks_in_order(docs):
    name = "tasktoy_r_3_15"
    ds = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, split="train", shuffle=False, seed=4)
    got = list(ds.take(6).as_numpy_iterator())
    for ex, record in zip(got, records(name)):
        assert len(ex["inputs"]) + len(ex["targets"]) <= 512
        assert reconstruct(ex["inputs"], ex["targets"]) == record.tolist()
    again = list(seqio.get_mixture_or_task(name).get_dataset(LENGTHS, shuffle=False, seed=4).take(6))
    other = list(seqio.get_mixture_or_task(name).get_dataset(LENGTHS, shuffle=False, seed=5).take(6))
    assert all(a["targets"].tolist() == b["targets"].numpy().tolist() for a, b in zip(got, again))
    assert any(a["targets"].tolist() != b["targets"].numpy().tolist() for a, b in zip(got, other))


def test_seqio_mixtures_carry_the_preset_weights(docs):
    rates = {t.name: seqio.get_mixture_or_task("tasktoy").get_rate(t)
             for t in seqio.get_mixture_or_task("tasktoy").tasks}
    assert rates == {f"tasktoy_{d.name}": d.weight for d in UL2R}
    assert len(seqio.get_mixture_or_task("tasktoy2").tasks) == 7


def test_lm_task_is_chunk_plus_eos(docs):
    task = get_seekable_task("tasktoy_lm")
    ex = seekable_example(task, tf.constant(0, tf.int64), 0, "train", LENGTHS)
    assert ex["inputs"].numpy().size == 0 and ex["targets"].numpy()[-1] == VOCAB.eos_id
    assert ex["targets"].numpy().size == 512  # a full chunk of 511 + EOS


def test_bad_mode_token_is_named(docs):
    from flan_ul2r.data.ul2.denoisers import Denoiser

    register_ul2r_mixture("tasktoy_bad", array_corpus(docs), VOCAB, [Denoiser("q", "span", 0.15, 3, "[XX]")])
    with pytest.raises(ValueError, match=r"mode_token='\[XX\]'"):
        seekable_example(get_seekable_task("tasktoy_bad_q"), tf.constant(0, tf.int64), 0, "train", LENGTHS)


def test_default_registrations():
    import flan_ul2r.tasks.ul2r  # noqa: F401  (registers; builds nothing)

    mix = seqio.get_mixture_or_task("ul2r")
    assert {t.name: mix.get_rate(t) for t in mix.tasks} == {
        "ul2r_s": 0.5, "ul2r_r_3_15": 0.25, "ul2r_x_32_15": 0.125, "ul2r_x_3_50": 0.125}
    assert len(seqio.get_mixture_or_task("ul2").tasks) == 7
    assert get_seekable_task("lm").name == "lm"
    assert all(set(t.splits) == {"train", "validation"} for t in mix.tasks)


@pytest.mark.slow
@pytest.mark.subprocess
def test_importing_library_modules_registers_nothing():
    import subprocess
    import sys

    code = ("import seqio, flan_ul2r.data.ul2.cached_tasks, flan_ul2r.data.ul2.corpus_tasks, "
            "flan_ul2r.data.core.loader, flan_ul2r.data.ul2.preprocessors, "
            "flan_ul2r.data.corpus.document_stream, flan_ul2r.data.core.registry; "
            "print(len(seqio.TaskRegistry.names()) + len(seqio.MixtureRegistry.names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "0", out.stderr[-2000:]


def test_gin_rebinds_the_default_ul2r_denoisers():
    import gin

    from flan_ul2r.tasks.ul2r import register_defaults

    with gin.unlock_config():  # another test may have finalized (locked) gin
        try:
            gin.clear_config()
            gin.parse_config([
                "x/flan_ul2r.Denoiser.name = 'x_16_30'", "x/flan_ul2r.Denoiser.kind = 'span'",
                "x/flan_ul2r.Denoiser.noise_density = 0.3", "x/flan_ul2r.Denoiser.mean_span = 16",
                "x/flan_ul2r.Denoiser.mode_token = '[NLG]'", "x/flan_ul2r.Denoiser.weight = 1.0",
                "ul2r_denoisers.denoisers = [@x/flan_ul2r.Denoiser()]"])
            register_defaults()
            mix = seqio.get_mixture_or_task("ul2r")
            assert [t.name for t in mix.tasks] == ["ul2r_x_16_30"]
            assert get_seekable_task("ul2r_x_16_30").name == "ul2r_x_16_30"
        finally:
            gin.clear_config()
            register_defaults()
    assert len(seqio.get_mixture_or_task("ul2r").tasks) == 4
