"""`flan-ul2r inspect` in-process: JSON rows that reconstruct, seeds, packed rows, errors."""
from __future__ import annotations

import json

import pytest

import flan_ul2r.data.vocab.vocabularies as vocabularies
from flan_ul2r.cli import main
from flan_ul2r.data.ul2.cached_tasks import array_corpus, register_ul2r_mixture
from flan_ul2r.data.ul2.denoisers import UL2R
from tests._denoise_toy import VOCAB, reconstruct, toy_documents


@pytest.fixture(scope="module", autouse=True)
def toy():
    register_ul2r_mixture("inspecttoy", array_corpus(toy_documents(30, seed=8)), VOCAB, UL2R)


def run(capsys, *args):
    assert main(["inspect", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.slow
def test_rows_reconstruct_and_carry_strings(capsys):
    rows = run(capsys, "--task", "inspecttoy", "--num", "12", "--seed", "3", "--sequence_length", "256")
    assert len(rows) == 12
    names = {d.name for d in UL2R}
    for r in rows:
        assert r["denoiser"] in names and r["task"] == f"inspecttoy_{r['denoiser']}"
        assert len(reconstruct(r["inputs"], r["targets"])) > 0
        assert len(r["inputs"]) + len(r["targets"]) <= 256
        assert r["inputs_text"] == VOCAB.decode(r["inputs"]) and r["targets_text"].endswith("</s>")
    args = ["--task", "inspecttoy", "--num", "12", "--sequence_length", "256"]
    assert run(capsys, *args, "--seed", "3") == rows
    other = run(capsys, *args, "--seed", "4")
    assert other != rows


@pytest.mark.slow
def test_single_task_and_packed(capsys):
    rows = run(capsys, "--task", "inspecttoy_x_3_50", "--num", "3", "--sequence_length", "128")
    assert all(r["denoiser"] == "x_3_50" for r in rows)
    packed = run(capsys, "--task", "inspecttoy", "--packed", "--batch_size", "2", "--num", "2",
                 "--sequence_length", "128")
    assert [(r["batch"], r["row"]) for r in packed] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for r in packed:
        assert len(r["decoder_target_tokens"]) == 128
        assert all(w == 0 for w, s in zip(r["decoder_loss_weights"], r["decoder_segment_ids"]) if s == 0)


@pytest.mark.slow
def test_errors_name_the_problem(capsys):
    assert main(["inspect", "--task", "ul2r_tpyo"]) == 2  # the same "did you mean" as train and eval
    err = capsys.readouterr().err
    assert "--task='ul2r_tpyo' is not a registered task or mixture; did you mean 'ul2r_" in err
    assert len(err) < 500  # the close names, not the whole registry
    assert main(["inspect", "--task", "inspecttoy", "--num", "-1"]) == 2
    assert "--num=-1" in capsys.readouterr().err
    assert main(["inspect"]) == 2


@pytest.mark.slow
def test_default_ul2r_mixture_on_the_default_corpus(capsys):
    """The README's main command, on the stdlib docstring corpus with the ByteVocabulary."""
    rows = run(capsys, "--task", "ul2r", "--num", "8", "--sequence_length", "512")
    assert len(rows) == 8 and {r["task"] for r in rows} <= {"ul2r_s", "ul2r_r_3_15", "ul2r_x_32_15",
                                                             "ul2r_x_3_50"}
    for r in rows:
        assert len(r["inputs"]) + len(r["targets"]) <= 512 and r["targets_text"]


@pytest.mark.slow
def test_vocab_flag_prints_describe(capsys):
    (row,) = run(capsys, "--vocab", "byte")
    vocab = vocabularies.get_vocabulary("byte")
    assert row["sentinels"]["first"] == vocab.sentinel_ids[0]
    assert {m: v["id"] for m, v in row["mode_tokens"].items()} == vocab.mode_token_ids


@pytest.mark.slow
def test_byte_vocabulary_text_round_trip(capsys):
    """Real ByteVocabulary + real prose: undoing the denoising gives back the original text."""
    vocab = vocabularies.get_vocabulary("byte")
    docs = [json.__doc__, pytest.__doc__ or "", main.__doc__ or "", __doc__] * 3
    ids = [vocab.encode(d) for d in docs]
    register_ul2r_mixture("inspectbytes", array_corpus(ids), vocab, UL2R)
    rows = run(capsys, "--task", "inspectbytes", "--num", "10", "--sequence_length", "128")
    sentinels, eos = set(vocab.sentinel_ids), vocab.eos_id
    text = "".join(d + "</s>" for d in docs)  # documents are concatenated, EOS after each
    for r in rows:
        inputs, targets = r["inputs"][1:], r["targets"][:-1]
        assert r["targets"][-1] == eos and r["inputs"][0] == vocab.mode_token_ids[
            {"s": "[S2S]", "r_3_15": "[NLU]"}.get(r["denoiser"], "[NLG]")]
        if r["denoiser"] == "s":
            original = inputs + targets
        else:
            spans, out, j = [], [], 0
            for t in targets:
                spans.append([]) if t in sentinels else spans[-1].append(t)
            for t in inputs:
                out += spans[(j := j + 1) - 1] if t in sentinels else [t]
            original = out
        assert vocab.decode(original) in text
