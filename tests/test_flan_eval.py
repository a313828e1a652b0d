"""Evaluation prompts (data/flan/eval_prompts.py), the one held-out renderer: checked against the layout
the README documents, built by hand here (FLAN v2 FewShotPattern: "\n\n" between inputs and target,
"\n\n\n" between exemplars; "OPTIONS:" and "-" bullets). tests/test_eval_cli.py checks that
`flan-ul2r eval` scores exactly these prompts."""

import pytest

from flan_ul2r.data.flan.eval_prompts import eval_prompts
from flan_ul2r.data.flan.instruction_tasks import register_instruction_task
from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, generate
from flan_ul2r.data.flan.templates import Template
from tests._library_helpers import remove_member

TASKS = {t.name: t for t in SUITE}
TRIGGER = "\n\nLet's think step by step."


def _by_hand(template, example, with_options):
    """The inputs of one example, formatted by hand: the options block where `{options_}` stands."""
    options = "".join(f"\n- {o}" for o in example["options"]) if with_options else ""
    return template.inputs.format(**example, options_="\nOPTIONS:" + options if options else "")


@pytest.mark.parametrize("task", [t.name for t in SUITE if t.held_out])
def test_zero_shot_prompts_are_the_validation_split_in_template_i_mod_n(task):
    prompts = eval_prompts(f"flan_{task}", "zs")  # with or without the `flan_` prefix
    examples = generate(TASKS[task], SUITE_SIZES["validation"], "validation")
    templates = TASKS[task].templates
    assert len(prompts) == len(examples) >= 200
    for i, (p, ex) in enumerate(zip(prompts, examples)):
        t = templates[i % len(templates)]
        assert p["template"] == i % len(templates) and p["num_shots"] == 0 and p["task"] == task
        assert p["inputs"] == _by_hand(t, ex, bool(ex.get("options")))
        assert p["answer"] == ex["answer"] and p["options"] == tuple(ex.get("options") or ())
    if prompts[0]["options"]:  # rank: zero-shot with the options shown, the same prompt
        assert [p["inputs"] for p in eval_prompts(task, "rank")] == [p["inputs"] for p in prompts]


def test_few_shot_prompts_show_the_first_train_examples_then_the_query():
    task = TASKS["add_three"]
    train, queries = generate(task, 3, "train"), generate(task, 5, "validation")
    prompts = eval_prompts("add_three", "fs", limit=5)
    assert [p["index"] for p in prompts] == list(range(5))
    for i, (p, q) in enumerate(zip(prompts, queries)):
        t = task.templates[i % len(task.templates)]
        shots = [f"{t.inputs.format(**e)}\n\n{e['answer']}" for e in train]
        assert p["inputs"] == "\n\n\n".join(shots + [t.inputs.format(**q)]) and p["num_shots"] == 3
        assert p["targets"] == p["answer"] == q["answer"]
    one = eval_prompts("add_three", "fs", num_shots=1, limit=1)[0]
    assert one["inputs"].count("\n\n\n") == 1 and one["num_shots"] == 1
    assert eval_prompts("add_three", "fs", num_shots=0, limit=3) == [
        {**p, "style": "fs"} for p in eval_prompts("add_three", "zs", limit=3)]


def test_cot_prompts_end_with_the_evaluation_trigger_after_exemplars_with_rationales():
    task = TASKS["multi_step_arithmetic"]
    train, query = generate(task, 3, "train"), generate(task, 1, "validation")[0]
    p = eval_prompts("multi_step_arithmetic", "cot", limit=1)[0]
    t = task.templates[0]
    shots = [f"{t.inputs.format(**e)}{TRIGGER}\n\n{e['rationale']} So the answer is {e['answer']}."
             for e in train]
    assert p["inputs"] == "\n\n\n".join(shots + [t.inputs.format(**query) + TRIGGER])
    assert p["targets"] == f"{query['rationale']} So the answer is {query['answer']}."


def test_a_registered_instruction_task_renders_the_same_way():
    rows = [{"word": w, "answer": w.upper()} for w in ("ab", "cd", "ef", "gh")]
    pool = [{"word": "xy", "answer": "XY"}]
    name = register_instruction_task("eval_upper", rows, [Template("Upper-case {word}.")], exemplars=pool,
                                     join_mixtures=False)
    try:
        prompts = eval_prompts(name, "fs", split="validation", limit=2)
        assert [p["inputs"] for p in prompts] == ["Upper-case xy.\n\nXY\n\n\nUpper-case ab.",
                                                  "Upper-case xy.\n\nXY\n\n\nUpper-case cd."]
        assert [p["num_shots"] for p in prompts] == [1, 1] and prompts[0]["task"] == "eval_upper"
    finally:
        remove_member(name)


def test_errors_name_the_value():
    with pytest.raises(ValueError, match=r"unknown style 'fs_opt'; styles are \('zs', 'fs', 'cot', 'rank'\)"):
        eval_prompts("navigate", "fs_opt")
    with pytest.raises(ValueError, match="unknown task 'mmlu': neither an embedded-suite task"):
        eval_prompts("mmlu", "zs")
