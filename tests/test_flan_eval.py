"""Evaluation prompts for held-out tasks: rendered as training renders, with the evaluation CoT trigger,
the answer and options as the prompt shows them."""

import re

import pytest

from flan_ul2r.data.flan import patterns as fp
from flan_ul2r.data.flan.eval_prompts import eval_prompts
from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, generate
from flan_ul2r.data.flan.templates import RenderFormat, render
from flan_ul2r.data.vocab.vocabularies import get_vocabulary

TASKS = {t.name: t for t in SUITE}


@pytest.mark.parametrize("task", [t.name for t in SUITE if t.held_out])
def test_every_held_out_task_has_200_prompts_whose_answer_is_the_shown_option(task):
    prompts = eval_prompts(task, "zs_opt")
    examples = generate(TASKS[task], SUITE_SIZES["validation"], "validation")
    assert len(prompts) == len(examples) >= 200
    for p, ex in zip(prompts, examples):
        assert p["task"] == f"flan_{task}" and p["targets"] == p["answer"]
        if p["options"]:  # the answer is the label printed in front of the true option (or that option)
            label = re.escape(p["answer"].strip("()"))
            shown = rf"\n(\(?{label}[.)]?|[-*+]+) {re.escape(ex['answer'])}(\n|$)"
            assert re.search(shown, p["inputs"]) and (p["answer"] == ex["answer"]) == (
                label == re.escape(ex["answer"])
            )
            assert p["answer"] in p["options"] and len(p["options"]) == len(ex["options"])
        else:
            assert p["answer"] == ex["answer"]
    if TASKS[task].lettered:  # MMLU's shape: always letters, the target the letter
        assert all(re.fullmatch(r"\(?[A-Za-z1-9]\)?", p["answer"]) for p in prompts)


def test_zero_shot_cot_prompt_is_the_training_template_with_the_evaluation_trigger():
    task = TASKS["multi_step_arithmetic"]
    examples = generate(task, 50, "validation")
    prompts = eval_prompts("multi_step_arithmetic", "cot", limit=50)
    for p, ex in zip(prompts, examples):
        fmt = RenderFormat(cot_trigger="\n\n" + fp.EVAL_COT_TRIGGER)
        x, y = render(ex, task.templates[p["template"]], "cot", fmt=fmt)
        assert p["inputs"] == x and p["inputs"].endswith("Let's think step by step.")
        assert p["targets"].startswith(ex["rationale"]) and p["targets"].endswith(f" {ex['answer']}.")
    assert len({p["template"] for p in prompts}) == len(task.templates)  # templates drawn as in training


def test_few_shot_prompts_show_num_shots_exemplars_from_train():
    prompts = eval_prompts("add_three", "fs_noopt", num_shots=3, limit=40)
    train = {(e["a"], e["b"], e["c"]) for e in generate(TASKS["add_three"], SUITE_SIZES["train"])}
    for p in prompts:
        assert p["num_shots"] == 3
        questions = re.findall(r"(\d+)(?: plus |, )(\d+)(?: plus | and )(\d+)", p["inputs"])
        assert len(questions) == 4  # three exemplars and the query
        for a, b, c in questions[:3]:
            assert (int(a), int(b), int(c)) in train
            assert str(int(a) + int(b) + int(c)) in p["inputs"]  # each exemplar shows its answer
    assert not any(fp.EVAL_COT_TRIGGER in p["inputs"] for p in prompts)


def test_budget_prunes_exemplars_when_a_vocabulary_is_given():
    full = eval_prompts("multi_step_arithmetic", "fs_cot", num_shots=8, limit=20)
    pruned = eval_prompts(
        "multi_step_arithmetic",
        "fs_cot",
        num_shots=8,
        limit=20,
        vocabulary=get_vocabulary("byte"),
        inputs_length=1024,
    )
    assert all(p["num_shots"] == 8 for p in full)
    assert all(len(p["inputs"].encode()) + 1 <= fp.few_shot_budget(1024) for p in pruned)
    assert max(p["num_shots"] for p in pruned) < 8


def test_deterministic_in_seed_and_errors_name_the_value():
    assert eval_prompts("navigate", "fs_opt", limit=5) == eval_prompts("navigate", "fs_opt", limit=5)
    assert eval_prompts("navigate", "fs_opt", limit=5) != eval_prompts("navigate", "fs_opt", limit=5, seed=1)
    with pytest.raises(ValueError, match="unknown style 'few_shot'"):
        eval_prompts("navigate", "few_shot")
    with pytest.raises(ValueError, match="unknown task 'mmlu'"):
        eval_prompts("mmlu", "zs_opt")
