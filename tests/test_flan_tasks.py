"""Flan mixtures: family rates, held-out separation, few-shot exemplars, packed loss weights."""
import collections
import json

import numpy as np
import pytest

import flan_ul2r.tasks.flan as flan
from flan_ul2r.data.indexed import get_mixture_or_task
from flan_ul2r.data.instruction_suite import SUITE
from flan_ul2r.data.loader import make_train_iterator
from flan_ul2r.data.templates import EXAMPLE_SEPARATOR, Template

LENGTHS = {"inputs": 192, "targets": 64}


def test_held_out_tasks_never_in_the_training_mixture():
    train = {t.name for t, _ in get_mixture_or_task("flan")}
    held = {t.name for t, _ in get_mixture_or_task("flan_heldout")}
    assert held == {f"flan_{t.name}" for t in SUITE if t.held_out}
    assert train == {f"flan_{t.name}" for t in SUITE if not t.held_out}
    assert not train & held


def test_family_shares_follow_the_paper_over_10k_draws():
    # Chung et al. 2022 Table 23, Proportion B: Muffin 46.0, T0-SF 27.9, NIV2 24.2, CoT 1.8 (percent)
    paper = {"muffin": 46.0, "t0sf": 27.9, "niv2": 24.2, "cot": 1.8}
    it = make_train_iterator("flan", LENGTHS, 8, seed=3, with_strings=True)
    counts = collections.Counter()
    for _, ex in zip(range(10_000), it.examples()):
        counts[flan._FAMILY_OF[ex["task"].decode()]] += 1
    total = sum(paper.values())
    for fam, pct in paper.items():
        assert abs(100 * counts[fam] / 10_000 - 100 * pct / total) < 2.0, (fam, counts)


def test_examples_proportional_with_caps_inside_a_family():
    flan._SIZES.update(big=50_000, small=1_000)
    flan._FAMILY_OF.update(big="niv2", small="niv2")
    try:
        w = dict(flan.family_weights(["big", "small"], {"niv2": 1.0}, {"niv2": 5_000}))
        assert w["big"] == pytest.approx(5 / 6) and w["small"] == pytest.approx(1 / 6)  # 5k cap vs 1k
    finally:
        for k in ("big", "small"):
            flan._SIZES.pop(k), flan._FAMILY_OF.pop(k)


@pytest.mark.parametrize("rate", [0, -1.0])
def test_family_rate_zero_or_negative_is_an_error_naming_the_family(rate):
    with pytest.raises(ValueError, match=r"family 'cot' has rate"):
        flan.family_weights(["flan_word_problem"], {**flan.FAMILY_RATES_PAPER, "cot": rate}, flan.FAMILY_CAPS)


def test_user_task_joins_flan_and_few_shot_never_shows_the_example_itself():
    rows = [{"q": f"question number {i}", "answer": f"answer {i}"} for i in range(4)]
    name = flan.register_instruction_task("my_quiz", rows, [Template("Q: {q}")], family="t0sf",
                                          style_mix={"fs_noopt": 1.0}, num_shots=3)
    try:
        assert name in {t.name for t, _ in get_mixture_or_task("flan")}
        task = get_mixture_or_task(name)[0][0]
        import tensorflow as tf

        for i in range(4):
            for seed in range(5):
                ex = task.preprocess(task.fetch(tf.constant(i, tf.int64), "train", LENGTHS),
                                     tf.constant([seed, 7], tf.int64), LENGTHS)
                text = task.vocabulary.decode(ex["inputs"].numpy())
                blocks = text.replace("</s>", "").split(EXAMPLE_SEPARATOR)
                assert blocks[-1] == f"Q: question number {i}"
                shown = {b.split("\n\n")[0] for b in blocks[:-1]}
                assert shown == {f"Q: question number {j}" for j in range(4) if j != i}
                assert ex["style"].numpy() == b"fs_noopt"
    finally:
        flan._FAMILY_OF.pop(name)
        flan.register_mixtures()


def test_packed_flan_batch_has_no_loss_on_inputs():
    it = make_train_iterator("flan", LENGTHS, 4, seed=0)
    eos = 1
    for _ in range(2):
        b = next(it)
        for row in range(4):
            seg, tgt = b["decoder_segment_ids"][row], b["decoder_target_tokens"][row]
            w = b["decoder_loss_weights"][row]
            for s in set(seg[seg > 0]):
                idx = np.where(seg == s)[0]
                eos_at = idx[tgt[idx] == eos]
                assert len(eos_at) == 2  # inputs end with EOS, targets end with EOS (Flan section 2.2)
                inputs_end = eos_at[0]
                assert not w[idx[idx <= inputs_end]].any()  # no loss on any input token (or its EOS)
                assert w[idx[idx > inputs_end]].all()  # loss on every target token
        assert not b["decoder_loss_weights"][b["decoder_segment_ids"] == 0].any()


def test_inspect_flan_rows_carry_task_and_style(capsys):
    from flan_ul2r import cli

    assert cli.main(["inspect", "--task", "flan", "--num", "6", "--sequence_length", "256"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert len(rows) == 6
    for r in rows:
        assert r["task"].startswith("flan_") and r["style"] in flan.DEFAULT_STYLE_MIX
        assert r["inputs"] and r["targets"] and r["inputs_text"] and r["targets_text"]
