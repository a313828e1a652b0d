"""The held-out rule on the rendered training data (data/flan/heldout_leakage.py): the `flan` mixture
holds no held-out task, template or item, and the check fails as soon as one is put in."""
import random

import pytest

import flan_ul2r.tasks.flan  # noqa: F401  (registers the embedded suite and the `flan` mixture)
from flan_ul2r.data.flan import instruction_tasks
from flan_ul2r.data.flan.heldout_leakage import LeakageError, check_heldout_leakage, structural_findings
from flan_ul2r.data.flan.suite.tasks import SUITE, generate
from flan_ul2r.data.flan.templates import Template
from tests._library_helpers import remove_member

LENGTHS = {"inputs": 512, "targets": 128}


def _suite_task(name):
    return next(t for t in SUITE if t.name == name)


@pytest.mark.slow
def test_the_flan_mixture_holds_nothing_of_the_held_out_tasks():
    checked = check_heldout_leakage("flan", num_examples=1500, lengths=LENGTHS)
    assert checked["examples"] == 1500 and checked["fingerprints"] > 100
    assert set(checked["held_out_tasks"]) == {t.name for t in SUITE if t.held_out}
    assert structural_findings({f"flan_{t.name}" for t in SUITE if not t.held_out}) == []


def _with_task(name, examples, template):
    instruction_tasks.register_instruction_task(name, examples, [template], family="muffin",
                                                style_mix={"zs_noopt": 1.0}, num_examples=len(examples))


@pytest.fixture
def registered():
    names = []
    yield names
    for name in names:
        remove_member(name)


@pytest.mark.slow
def test_a_held_out_template_in_the_mixture_fails_the_check(registered):
    held_out = _suite_task("add_three")
    rng = random.Random(0)
    fresh = [{"a": rng.randint(60, 99), "b": rng.randint(60, 99), "c": rng.randint(60, 99), "answer": "0"}
             for _ in range(2000)]  # items of its own: only the template is the held-out task's
    registered.append("leaky_template")
    _with_task("leaky_template", fresh, held_out.templates[0])
    with pytest.raises(LeakageError, match=r"'leaky_template' holds held-out task 'add_three''s template 0: "
                                           r"'What is \d+ plus \d+ plus \d+\?'"):
        check_heldout_leakage("flan", num_examples=600, lengths=LENGTHS)


@pytest.mark.slow
def test_held_out_items_under_a_new_template_fail_the_check(registered):
    items = generate(_suite_task("multi_step_arithmetic"), 200, "validation")
    registered.append("leaky_items")
    _with_task("leaky_items", items, Template("Calculate this for me: {question}"))
    with pytest.raises(LeakageError, match="'leaky_items' holds held-out task 'multi_step_arithmetic''s "
                                           "item"):
        check_heldout_leakage("flan", num_examples=600, lengths=LENGTHS)


def test_a_held_in_task_sharing_a_held_out_template_is_found_without_rendering():
    held_out = _suite_task("sort_words")
    clone = type(held_out)("alphabet", held_out.make, (Template("x {words}"), held_out.templates[1]))
    found = structural_findings(["flan_alphabet", "flan_sort_words"], SUITE + (clone,))
    assert "held-out task 'flan_sort_words' is in the mixture" in found
    assert any("'alphabet' uses held-out task 'sort_words''s template 'Put in dictionary order" in f
               for f in found)
