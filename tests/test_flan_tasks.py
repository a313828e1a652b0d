"""Flan mixtures: family and style shares (binomial tolerances), CoT formats only in the CoT family,
held-out separation, user tasks, seekable resume, packed loss weights, `inspect`."""

import collections
import json
import math

import numpy as np
import pytest
import tensorflow as tf

import flan_ul2r.tasks.flan  # noqa: F401 - registers the suite and the mixtures
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.core.seekable import get_mixture_or_task, seekable_example, seekable_example_batch
from flan_ul2r.data.flan import instruction_tasks as it
from flan_ul2r.data.flan import mixing as flan_mixing
from flan_ul2r.data.flan import patterns as fp
from flan_ul2r.data.flan.suite.tasks import SUITE, item_key
from flan_ul2r.data.flan.templates import COT_STYLES, Template
from tests._library_helpers import remove_member

LENGTHS = {"inputs": 192, "targets": 64}
N_DRAWS = 10_000


def _within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.fixture(scope="module")
def draws():
    """10k examples of `flan` through the training loader: (task, family, style, inputs, targets)."""
    stream = make_train_iterator("flan", LENGTHS, 8, seed=3, with_strings=True).examples()
    vocab = get_mixture_or_task("flan")[0][0].vocabulary
    rows = []
    for _, ex in zip(range(N_DRAWS), stream):
        task = ex["task"].decode()
        rows.append(
            (
                task,
                it.family_of(task),
                ex["style"].decode(),
                vocab.decode(ex["inputs"][:-1].tolist()),
                vocab.decode(ex["targets"][:-1].tolist()),
            )
        )
    return rows


def test_held_out_tasks_never_in_the_training_mixture():
    train = {t.name for t, _ in get_mixture_or_task("flan")}
    held = {t.name for t, _ in get_mixture_or_task("flan_heldout")}
    assert held == {f"flan_{t.name}" for t in SUITE if t.held_out}
    assert train == {f"flan_{t.name}" for t in SUITE if not t.held_out}


@pytest.mark.slow
@pytest.mark.parametrize("task", SUITE, ids=lambda t: t.name)
def test_registered_train_and_validation_splits_are_disjoint(task):
    renderer = it.get_renderer(f"flan_{task.name}")
    train, validation = renderer.rows("train"), renderer.rows("validation")
    assert len(validation) == 200 and not {item_key(e) for e in train} & {item_key(e) for e in validation}


@pytest.mark.slow
def test_family_shares_follow_the_paper(draws):
    # Chung et al. 2022 Table 23, Proportion B: Muffin 46.0, T0-SF 27.9, NIV2 24.2, CoT 1.8 (percent)
    paper = {"muffin": 46.0, "t0sf": 27.9, "niv2": 24.2, "cot": 1.8}
    counts = collections.Counter(family for _, family, *_ in draws)
    for family, pct in paper.items():  # 4 sigma: CoT's 1.8% is 180 +- 53 of 10k; absent (0) fails
        assert _within(counts[family], N_DRAWS, pct / sum(paper.values())), (family, counts)


def test_cot_formats_only_in_the_cot_family(draws):
    cot_rows = [d for d in draws if d[1] == "cot"]
    assert cot_rows and all(style in COT_STYLES for _, _, style, *_ in cot_rows)
    for task, family, style, inputs, targets in draws:
        if family != "cot":
            assert style not in COT_STYLES, (task, style)
            assert not any(lead in targets for lead in fp.ANSWER_LEADS), (task, targets)
            assert not any(trigger in inputs for trigger in fp.COT_TRIGGERS), (task, inputs)
        assert fp.EVAL_COT_TRIGGER not in inputs


@pytest.mark.parametrize(
    "task,expected",
    [
        (
            "flan_compare_numbers",
            {"zs_noopt": 0.25, "zs_opt": 0.25, "fs_noopt": 0.25, "fs_opt": 0.25},
        ),  # options
        ("flan_add_two", {"zs_noopt": 0.5, "fs_noopt": 0.5}),  # no options: the _opt draws render as _noopt
        ("flan_uppercase", {"zs_noopt": 0.5, "fs_noopt": 0.5}),  # NIV2: zs_opt / fs_opt only, no options here
        ("flan_word_problem", {"cot": 0.5, "fs_cot": 0.5}),  # CoT family: CoT formats only, 50/50
    ],
)
def test_each_style_share_follows_the_family_style_mix(task, expected):
    renderer = it.get_renderer(task)
    n = 4000
    seeds = np.stack([np.full(n, 11), np.arange(n)], axis=1)
    *_, styles, _ = renderer.block(np.arange(n) % len(renderer.rows("train")), seeds, "train", 2048)
    counts = collections.Counter(s.decode() for s in styles)
    assert set(counts) == set(expected), counts
    for style, p in expected.items():
        assert _within(counts[style], n, p), (task, counts)


def test_examples_proportional_with_caps_inside_a_family():
    w = dict(
        flan_mixing.family_weights(
            {"big": 50_000, "small": 1_000}, {"big": "niv2", "small": "niv2"}, {"niv2": 1.0}, {"niv2": 5_000}
        )
    )
    assert w["big"] == pytest.approx(5 / 6) and w["small"] == pytest.approx(1 / 6)  # 5k cap vs 1k
    w = dict(
        flan_mixing.family_weights(
            {"a": 10, "b": 30, "c": 10},
            {"a": "muffin", "b": "muffin", "c": "cot"},
            {"muffin": 3.0, "cot": 1.0},
            {"muffin": 20},
        )
    )
    assert w == pytest.approx({"a": 0.75 * 10 / 30, "b": 0.75 * 20 / 30, "c": 0.25})


@pytest.mark.parametrize("rate", [0, -1.0])
def test_family_rate_zero_or_negative_is_an_error_naming_the_family(rate):
    with pytest.raises(ValueError, match=r"family 'cot' has rate"):
        flan_mixing.family_weights(
            {"t": 5}, {"t": "cot"}, {**flan_mixing.FAMILY_RATES_PAPER, "cot": rate}, flan_mixing.FAMILY_CAPS
        )


def test_unknown_family_or_style_is_an_error():
    with pytest.raises(ValueError, match=r"task 'x': unknown family 'misc'"):
        it.register_instruction_task("x", [{"q": "a", "answer": "b"}], [Template("{q}")], family="misc")
    with pytest.raises(ValueError, match=r"unknown: \['cot_zs'\]"):
        it.register_instruction_task(
            "x", [{"q": "a", "answer": "b"}], [Template("{q}")], style_mix={"cot_zs": 1}
        )


def test_user_task_joins_flan_and_few_shot_never_shows_the_example_itself():
    rows = [{"q": f"question number {i}", "answer": f"answer {i}"} for i in range(4)]
    name = it.register_instruction_task(
        "my_quiz", rows, [Template("Q: {q}")], family="t0sf", style_mix={"fs_noopt": 1.0}, num_shots=3
    )
    try:
        assert name in {t.name for t, _ in get_mixture_or_task("flan")}
        task = get_mixture_or_task(name)[0][0]
        lengths = {"inputs": 512, "targets": 64}  # room for all three exemplars (FLAN's budget: 480)
        for i in range(4):
            for seed in range(5):
                ex = task.preprocess(
                    task.fetch(tf.constant(i, tf.int64), "train", lengths),
                    tf.constant([seed, 7], tf.int64),
                    lengths,
                )
                text = task.vocabulary.decode(ex["inputs"].numpy()[:-1])
                others = [j for j in range(4) if j != i]
                assert text.count(f"question number {i}") == 1 and f"answer {i}" not in text  # query only
                assert all(f"question number {j}" in text and f"answer {j}" in text for j in others)
                assert text.rfind(f"number {i}") > max(text.rfind(f"number {j}") for j in others)
                assert ex["style"].numpy() == b"fs_noopt"
    finally:
        remove_member(name)
    assert name not in {t.name for t, _ in get_mixture_or_task("flan")}


def test_block_and_one_example_agree_and_resume_is_exact():
    task = get_mixture_or_task("flan_date_add")[0][0]
    positions = tf.constant(np.arange(5000, 5012), tf.int64)
    block = seekable_example_batch(task, positions, 9, "train", LENGTHS)
    for k in range(12):
        one = seekable_example(task, positions[k], 9, "train", LENGTHS)
        assert one["inputs"].numpy().tolist() == block["inputs"][k].numpy().tolist()
        assert one["targets"].numpy().tolist() == block["targets"][k].numpy().tolist()
        assert one["style"].numpy() == block["style"][k].numpy()
    first = make_train_iterator("flan_word_problem", LENGTHS, 4, seed=5)
    for _ in range(3):
        next(first)
    state = json.loads(json.dumps(first.state()))
    resumed = make_train_iterator("flan_word_problem", LENGTHS, 4, seed=5, state=state)
    for _ in range(2):
        a, b = next(first), next(resumed)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_packed_flan_batch_has_no_loss_on_inputs():
    stream = make_train_iterator("flan", LENGTHS, 4, seed=0)
    eos = 1
    for _ in range(2):
        b = next(stream)
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


@pytest.mark.slow
def test_inspect_2000_rows_show_cot_only_from_cot_tasks_near_the_configured_rate(capsys):
    from flan_ul2r import cli

    assert cli.main(["inspect", "--task", "flan", "--num", "2000", "--sequence_length", "1024"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert len(rows) == 2000
    cot = [r for r in rows if r["style"] in COT_STYLES]
    assert cot and all(it.family_of(r["task"]) == "cot" for r in cot)
    assert all(any(lead in r["targets_text"] for lead in fp.ANSWER_LEADS) for r in cot)
    assert not any(lead in r["targets_text"] for r in rows if r not in cot for lead in fp.ANSWER_LEADS)
    rates = flan_mixing.FAMILY_RATES_PAPER
    assert _within(len(cot), 2000, rates["cot"] / sum(rates.values()))  # 36 +- 24
    for r in rows:
        assert r["task"].startswith("flan_") and r["inputs"] and r["targets"]
