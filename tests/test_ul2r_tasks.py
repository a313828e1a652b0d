"""UL2R task registration: records cover the corpus, seqio view = indexed view, mixture rates."""
from __future__ import annotations

import numpy as np
import pytest
import seqio
import tensorflow as tf
from _denoise_toy import VOCAB, reconstruct, toy_documents

from flan_ul2r.data.denoisers import UL2, UL2R, raw_length
from flan_ul2r.data.indexed import get_indexed_task
from flan_ul2r.tasks.ul2r import ArrayCorpus, register_lm_task, register_ul2r_mixture

LENGTHS = {"inputs": 256, "targets": 256}


@pytest.fixture(scope="module")
def docs():
    d = toy_documents(40, seed=5)
    d[3:3] = [np.zeros(0, np.int32)]
    d.append(np.zeros(0, np.int32))
    register_ul2r_mixture("tasktoy", ArrayCorpus(d), VOCAB, UL2R)
    register_ul2r_mixture("tasktoy2", ArrayCorpus(d), VOCAB, UL2)
    register_lm_task("tasktoy_lm", ArrayCorpus(d), VOCAB)
    return d


def test_long_documents_are_chunked_not_dropped(docs):
    for name, d in [("tasktoy_x_3_50", UL2R[3]), ("tasktoy_s", UL2R[0])]:
        task = get_indexed_task(name)
        n = task.num_records("train", LENGTHS)
        raw = raw_length(d, 512)
        records = [task.fetch(tf.constant(i, tf.int64), "train", LENGTHS)["tokens"].numpy() for i in range(n)]
        assert max(len(r) for r in records) == raw
        nonempty = [x for x in docs if len(x)]
        assert len(nonempty) < len(docs), "the toy corpus has empty documents, which are skipped"
        assert np.array_equal(np.concatenate(records), np.concatenate(nonempty))
        assert n == sum(-(-len(x) // raw) for x in nonempty)


def test_seqio_view_yields_the_indexed_examples(docs):
    task = get_indexed_task("tasktoy_r_3_15")
    ds = seqio.get_mixture_or_task("tasktoy_r_3_15").get_dataset(LENGTHS, split="train", shuffle=True, seed=4)
    got = list(ds.take(5).as_numpy_iterator())
    for i, ex in enumerate(got):
        want = task.example(tf.constant(i, tf.int64), 4, "train", LENGTHS)
        assert ex["inputs"].tolist() == want["inputs"].numpy().tolist()
        assert ex["targets"].tolist() == want["targets"].numpy().tolist()
        index = task.record_index(tf.constant(i, tf.int64), 4, task.num_records("train", LENGTHS))
        record = task.fetch(index, "train", LENGTHS)["tokens"].numpy().tolist()
        assert reconstruct(ex["inputs"], ex["targets"]) == record
    other = list(seqio.get_mixture_or_task("tasktoy_r_3_15").get_dataset(LENGTHS, seed=5).take(5))
    assert any(a["targets"].tolist() != b["targets"].numpy().tolist() for a, b in zip(got, other))


def test_seqio_mixtures_carry_the_preset_weights(docs):
    rates = {t.name: seqio.get_mixture_or_task("tasktoy").get_rate(t)
             for t in seqio.get_mixture_or_task("tasktoy").tasks}
    assert rates == {f"tasktoy_{d.name}": d.weight for d in UL2R}
    assert len(seqio.get_mixture_or_task("tasktoy2").tasks) == 7


def test_lm_task_is_chunk_plus_eos(docs):
    task = get_indexed_task("tasktoy_lm")
    ex = task.example(tf.constant(0, tf.int64), 0, "train", LENGTHS)
    assert ex["inputs"].numpy().size == 0 and ex["targets"].numpy()[-1] == VOCAB.eos_id
    assert ex["targets"].numpy().size <= 512


def test_bad_mode_token_is_named(docs):
    from flan_ul2r.data.denoisers import Denoiser

    register_ul2r_mixture("tasktoy_bad", ArrayCorpus(docs), VOCAB, [Denoiser("q", "span", 0.15, 3, "[XX]")])
    with pytest.raises(ValueError, match=r"mode_token='\[XX\]'"):
        get_indexed_task("tasktoy_bad_q").example(tf.constant(0, tf.int64), 0, "train", LENGTHS)


def test_default_registrations():
    import flan_ul2r.tasks.ul2r  # noqa: F401  (registers; builds nothing)

    mix = seqio.get_mixture_or_task("ul2r")
    assert {t.name: mix.get_rate(t) for t in mix.tasks} == {
        "ul2r_s": 0.5, "ul2r_r_3_15": 0.25, "ul2r_x_32_15": 0.125, "ul2r_x_3_50": 0.125}
    assert len(seqio.get_mixture_or_task("ul2").tasks) == 7
    assert get_indexed_task("lm").name == "lm"


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
            assert get_indexed_task("ul2r_x_16_30").name == "ul2r_x_16_30"
        finally:
            gin.clear_config()
            register_defaults()
    assert len(seqio.get_mixture_or_task("ul2r").tasks) == 4
