"""Template styles rendered on fixtures of each real format (NIV2, GSM8K, inputs/targets, options QA)."""

from pathlib import Path

import pytest

from flan_ul2r.data.flan import formats as ff
from flan_ul2r.data.flan.patterns import OPTION_MARKERS
from flan_ul2r.data.flan.templates import (
    COT_TRIGGER,
    EXAMPLE_SEPARATOR,
    X_Y_DELIMITER,
    RenderFormat,
    Template,
    TemplateError,
    check_templates,
    render,
)

FIX = Path(__file__).parent / "fixtures"


def test_niv2_zero_and_few_shot():
    rows = ff.read_niv2(FIX / "niv2_task001_sentiment.json")
    assert len(rows) == 4 and rows[0]["answer"] == "negative"
    t = ff.NIV2_TEMPLATES[1]
    x, y = render(rows[0], t, "zs_noopt", task="niv2")
    assert (
        x
        == (
            "Definition: Given a sentence, answer whether its sentiment is positive or negative.\n\n"
            "Input: The soup was cold and bland.\nOutput:"
        )
        and y == "negative"
    )
    x, y = render(rows[0], t, "fs_noopt", rows[1:3], task="niv2")
    shots = x.split(EXAMPLE_SEPARATOR)
    assert len(shots) == 3 and shots[-1].endswith("The soup was cold and bland.\nOutput:")
    assert shots[0].endswith(X_Y_DELIMITER + "positive")  # exemplar 1 = instance 2 with its answer
    assert "What a wonderful morning!" in shots[0] and "The service was terrible." in shots[1]


def test_gsm8k_cot_zero_and_few_shot():
    rows = ff.read_cot(FIX / "gsm8k_train.jsonl")
    assert rows[0]["answer"] == "72" and "####" not in rows[0]["rationale"]
    t = Template("Q: {question}\nA:")
    x, y = render(rows[2], t, "cot", task="gsm8k")
    assert x == f"Q: Betty has 5 apples and eats 2. How many are left?\nA:{X_Y_DELIMITER}{COT_TRIGGER}"
    assert y == "5 - 2 = 3 apples are left. So the answer is 3."
    x, _ = render(rows[2], t, "fs_cot", rows[:2], task="gsm8k")
    first = x.split(EXAMPLE_SEPARATOR)[0]
    assert first.endswith("So the answer is 72.") and COT_TRIGGER in first


def test_inputs_targets_and_options_styles():
    rows = ff.read_inputs_targets(FIX / "flan_inputs_targets.jsonl")
    assert render(rows[0], Template("{inputs}"), "zs_noopt") == ("Translate to French: cat", "chat")
    qa = ff.read_options_qa(FIX / "qa_options.jsonl")
    t = Template("{question}{options_}")
    x_opt, y = render(qa[1], t, "zs_opt")
    assert x_opt == "What colour is the sky on a clear day?\nOPTIONS:\n- green\n- blue\n- red" and y == "blue"
    x_noopt, _ = render(qa[1], t, "zs_noopt")
    assert x_noopt == "What colour is the sky on a clear day?"
    x, _ = render(qa[1], t, "fs_opt", [qa[0]])
    assert x.count("OPTIONS:") == 2 and x.startswith("Which planet")


def test_template_with_missing_field_names_task_template_and_field():
    rows = ff.read_options_qa(FIX / "qa_options.jsonl")
    with pytest.raises(TemplateError, match=r"task 'quiz': template 1 references field 'passage'"):
        check_templates("quiz", [Template("{question}"), Template("{passage} {question}")], rows[0])
    with pytest.raises(TemplateError, match="field 'passage'"):
        render(rows[0], Template("{passage}"), "zs_noopt", task="quiz")


def test_bad_files_name_file_and_field(tmp_path):
    bad = tmp_path / "task002.json"
    bad.write_text('{"Definition": ["x"], "Positive Examples": []}')
    with pytest.raises(ff.FormatError, match=r"task002.json: NIV2 task lacks 'Instances'"):
        ff.read_niv2(bad)
    bad.write_text('{"Instances": []}')
    with pytest.raises(ff.FormatError, match="lacks 'Definition'"):
        ff.read_niv2(bad)
    g = tmp_path / "gsm.jsonl"
    g.write_text('{"question": "q", "answer": "no marker"}\n')
    with pytest.raises(ff.FormatError, match=r"gsm.jsonl:1: field 'answer' has no '####"):
        ff.read_cot(g)
    g.write_text('{"question": "q"}\nnot json\n')
    with pytest.raises(ff.FormatError, match=r"gsm.jsonl:2: not valid JSON"):
        ff.read_cot(g)
    q = tmp_path / "qa.jsonl"
    q.write_text('{"question": "q", "options": ["a", "b"], "answer": "c"}\n')
    with pytest.raises(ff.FormatError, match=r"qa.jsonl:1: field 'answer' 'c' is not one of the options"):
        ff.read_options_qa(q)


def test_gsm8k_calculator_annotations_are_stripped_by_default():
    rows = ff.read_cot(FIX / "gsm8k_train.jsonl")
    assert (
        rows[0]["rationale"]
        == "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May."
    )
    assert not any("<<" in r["rationale"] or ">>" in r["rationale"] for r in rows)
    kept = ff.read_cot(FIX / "gsm8k_train.jsonl", keep_calculator_annotations=True)
    assert "<<48/2=24>>24" in kept[0]["rationale"] and kept[2] == rows[2]


def test_lettered_options_rewrite_the_target_and_formats_follow_render_format():
    qa = ff.read_options_qa(FIX / "qa_options.jsonl")
    fmt = RenderFormat(options_header="", marker=OPTION_MARKERS[4])  # "(A)" markers, no header
    x, y = render(qa[1], Template("{question}{options_}"), "zs_opt", fmt=fmt)
    assert x == "What colour is the sky on a clear day?\n(A) green\n(B) blue\n(C) red" and y == "(B)"
    fmt = RenderFormat(inputs_prefix="Q:", targets_prefix="A:", x_y_delimiter="\n", example_separator="\n\n")
    x, y = render(qa[1], Template("{question}{options_}"), "fs_noopt", [qa[0]], fmt=fmt)
    first, query = "Which planet is closest to the sun?", "What colour is the sky on a clear day?"
    assert x == f"Q: {first}\nA: Mercury\n\nQ: {query}\nA:"
    assert y == "blue"


def test_niv2_few_shot_uses_positive_examples():
    import numpy as np

    from flan_ul2r.data.flan.instruction_tasks import InstructionRenderer, InstructionTask
    from flan_ul2r.data.vocab.vocabularies import get_vocabulary

    path = FIX / "niv2_task001_sentiment.json"
    positives = ff.read_niv2_exemplars(path)
    assert positives == [
        {
            "definition": "Given a sentence, answer whether its sentiment is positive or negative.",
            "input": "I loved this film.",
            "answer": "positive",
            "explanation": "Loved is positive.",
        }
    ]
    task = InstructionTask(
        "niv2_sentiment",
        lambda split: ff.read_niv2(path),
        ff.NIV2_TEMPLATES,
        "niv2",
        {"fs_noopt": 1.0},
        num_shots=2,
        exemplars=lambda split: positives,
    )
    renderer = InstructionRenderer(task, get_vocabulary("byte"))
    layout = renderer.layout("train")
    from flan_ul2r.data.flan.plan import plan

    p = plan(layout, "train", np.arange(4), np.stack([np.zeros(4, np.int64), np.arange(4)], 1), None)
    for r, instance in enumerate(ff.read_niv2(path)):
        text = layout.pieces.text(p.inputs[r])
        assert text.count("I loved this film.") == 1 and text.count(instance["input"]) == 1
        assert text.index("I loved this film.") < text.index(instance["input"])  # exemplar first
        assert (p.shots[r] >= 0).sum() == 1  # the pool has one positive example


def test_bad_niv2_positive_examples_name_the_field(tmp_path):
    bad = tmp_path / "task003.json"
    bad.write_text('{"Definition": ["x"], "Positive Examples": [{"input": "a"}], "Instances": []}')
    with pytest.raises(ff.FormatError, match=r"task003.json: Positive Examples\[0\]: field 'output' missing"):
        ff.read_niv2_exemplars(bad)
