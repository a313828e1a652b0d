"""BIG-Bench Hard (Suzgun et al. 2022, "Challenging BIG-Bench Tasks and Whether Chain-of-Thought Can Solve
Them"): 23 tasks = 27 entries (subtasks count individually), scored unweighted (Chung et al. 2022, 2.3).

Layout (`BBH_DIR`, the BIG-Bench-Hard repository root): `bbh/<task>.json` = {"examples": [{"input",
"target"}]} and `cot-prompts/<task>.txt` = optional canary lines, a `-----` line, the task description,
then three exemplars "Q: ...\\nA: Let's think step by step.\\n... So the answer is X.", blank-line separated.
The examples may instead come from a Hugging Face copy (lukaemon/bbh: `<task>/test`, columns input and
target); its exemplars are still `cot-prompts/<task>.txt`, which that copy lacks.

- CoT: the prompt file's description and exemplars as published, then "\\n\\nQ: {input}\\nA: Let's think step
  by step."; the answer follows "So the answer is".
- Direct: the same exemplars with the answer only ("Q: ...\\nA: X"), then "Q: {input}\\nA:" (Suzgun et
  al.'s answer-only prompts use the same three exemplars); the answer is the first line.
- Answers are compared with the target in the target's own form (`extract.bbh_answer`).
- Random (for the normalized average): per example, 100 / number of "(A)".."(R)" options listed in the
  input; 50 for True/False, valid/invalid and Yes/No targets; 0 for free-form targets (numbers, Dyck
  closings, sorted words). A task's chance is the mean over its examples, BBH's the mean over tasks.
"""
from __future__ import annotations

import re

from etils import epath

from flan_ul2r.evaluation.extract import answer_span, bbh_shape
from flan_ul2r.evaluation.files import BenchmarkFileError, json_list, require_dir, require_file
from flan_ul2r.evaluation.hf_files import find_split, nothing_found, read_rows
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol, few_shot

TASKS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
    "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
    "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
    "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
    "word_sorting")
LAYOUT = "bbh/<task>.json and cot-prompts/<task>.txt (the BIG-Bench-Hard repository)"
HF_LAYOUT = ("lukaemon/bbh: <task>/test-*.parquet or save_to_disk (columns input, target), with "
             "cot-prompts/<task>.txt")
COT_TRIGGER = "Let's think step by step."  # Suzgun et al. 2022 (after Kojima et al. 2022)

DIRECT = Protocol("BBH-Direct", shape="bbh", max_new_tokens=64, stop_sequences=("\n\n", "\nQ:"))
COT = Protocol("BBH-CoT", shape="bbh", cot=True, max_new_tokens=384, stop_sequences=("\n\nQ:",))


def parse_cot_prompt(path: epath.Path) -> tuple[str, list[tuple[str, str, str]]]:
    """(description, [(question, CoT answer text, final answer)]) of a `cot-prompts/<task>.txt` file."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    lines = text.split("\n")
    if "-----" in lines:
        text = "\n".join(lines[lines.index("-----") + 1:])
    parts = re.split(r"(?m)^Q: ", text)
    description, blocks = parts[0].strip(), parts[1:]
    shots = []
    for i, block in enumerate(blocks, 1):
        q_and_a = re.split(r"(?m)^A: ", block, maxsplit=1)
        answer = answer_span(q_and_a[-1]) if len(q_and_a) == 2 else None
        if answer is None:
            raise BenchmarkFileError(f"{path}: exemplar {i} lacks an 'A: ... So the answer is X.' part")
        shots.append((q_and_a[0].strip(), q_and_a[1].strip(), answer))
    if not shots:
        raise BenchmarkFileError(f"{path}: no 'Q: ' exemplars found")
    return description, shots


def read_examples(path: epath.Path) -> list[tuple[str, str]]:
    rows = json_list(path, "examples", '{"examples": [{"input", "target"}, ...]}')
    out = []
    for i, ex in enumerate(rows):
        if not (isinstance(ex, dict) and isinstance(ex.get("input"), str)
                and isinstance(ex.get("target"), str | int)):
            fields = sorted(ex) if isinstance(ex, dict) else type(ex).__name__
            raise BenchmarkFileError(f"{path}: example {i} needs string fields 'input' and 'target' (has "
                                     f"{fields})")
        out.append((ex["input"], str(ex["target"])))
    return out


def chance(question: str, target: str) -> float:
    shape = bbh_shape(target)
    if shape == "paren":
        letters = set(re.findall(r"(?m)^\(([A-R])\)", question))
        return 100.0 / len(letters) if letters else 0.0
    return 50.0 if shape in ("bool", "validity", "yesno") else 0.0


def exemplar(question: str, cot_text: str, answer: str, cot: bool) -> tuple[str, str]:
    """(the exemplar's block in the prompt, its answer text): "Q: ...\nA: <CoT or answer>\n\n"."""
    target = cot_text if cot else answer
    return f"Q: {question}\nA: {target}\n\n", target


def query(question: str, cot: bool) -> str:
    return f"Q: {question}\nA: {COT_TRIGGER}" if cot else f"Q: {question}\nA:"


def build_prompt(description: str, shots: list[tuple[str, str, str]], question: str, cot: bool) -> str:
    head = f"{description}\n\n" if description else ""
    return head + "".join(exemplar(*s, cot)[0] for s in shots) + query(question, cot)


def read_task_rows(root: epath.Path, task: str) -> list[tuple[str, str]]:
    """The task's (input, target) rows: `bbh/<task>.json` (the BIG-Bench-Hard repository), else a Hugging
    Face copy (lukaemon/bbh: `<task>/test-*.parquet` or a save_to_disk folder; columns input, target)."""
    original = root / "bbh" / f"{task}.json"
    if original.is_file() or (root / "bbh").is_dir():
        return read_examples(require_file(original, "BBH_DIR", LAYOUT))
    found = find_split(root, ("test", "train"), task)
    if found is None:
        raise nothing_found("BBH_DIR", root, LAYOUT, HF_LAYOUT)
    return [(str(r["input"]), str(r["target"])) for r in read_rows(found, ("input", "target"), HF_LAYOUT)]


def load(bbh_dir, task: str, *, cot: bool) -> list[EvalExample]:
    root = require_dir(bbh_dir, "BBH_DIR", LAYOUT)
    rows = read_task_rows(root, task)
    description, shots = parse_cot_prompt(require_file(
        root / "cot-prompts" / f"{task}.txt", "BBH_DIR",
        "the exemplars: cot-prompts/<task>.txt from the BIG-Bench-Hard repository, also beside a Hugging "
        "Face copy, which has none"))
    head = f"{description}\n\n" if description else ""
    blocks = [exemplar(*shot, cot) for shot in shots]
    return [few_shot(f"{task}/{i}", head, blocks, query(q, cot), (t,), chance=chance(q, t))
            for i, (q, t) in enumerate(rows)]


def tasks(bbh_dir) -> list[EvalTask]:
    """`bbh_direct.<task>` and `bbh_cot.<task>` for the 27 entries; `bbh_dir` a value or a callable."""
    get = bbh_dir if callable(bbh_dir) else (lambda: bbh_dir)
    out = []
    for t in TASKS:
        out.append(EvalTask(f"bbh_direct.{t}", DIRECT, lambda t=t: load(get(), t, cot=False)))
        out.append(EvalTask(f"bbh_cot.{t}", COT, lambda t=t: load(get(), t, cot=True)))
    return out
