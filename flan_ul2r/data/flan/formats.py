"""Readers for the real formats instruction data comes in; each returns example dicts for templates.

- `read_niv2`: a Natural Instructions v2 task JSON ("Definition", "Positive Examples", "Instances");
  fields definition, input, answer. `read_niv2_exemplars`: its "Positive Examples" (FLAN v2 takes NIV2
  few-shot exemplars from there, 2 per prompt), same fields plus explanation.
- `read_inputs_targets`: JSONL or Parquet with `inputs` / `targets` (how the Flan Collection is usually
  exported); fields inputs, answer.
- `read_cot`: GSM8K-style JSONL, `question` and `answer` = "rationale #### N"; fields question,
  rationale, answer. GSM8K's calculator annotations (`<<48/2=24>>`) are removed from the rationale by
  default (`keep_calculator_annotations=True` keeps them): they are tool calls, not prose.
- `read_options_qa`: JSONL with `question`, `options` (a list) and `answer` (one of the options).

Errors name the file, line and field (`FormatError`). Paths may be local or remote (flan_ul2r/fs.py).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from flan_ul2r import fs
from flan_ul2r.data.flan.templates import Template


class FormatError(ValueError):
    """Bad instruction data; the message names file, line/instance and field."""


def _read(path: fs.PathLike) -> str:
    """The file's text; bad UTF-8 is an error naming the line and byte offset."""
    if not fs.path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = fs.read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise FormatError(f"{path}:{line}: invalid UTF-8 at byte offset {e.start} of the file "
                          f"(byte {raw[e.start:e.start + 1]!r}, {e.reason})") from None


def jsonl_rows(path: fs.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; errors name the file and line."""
    for lineno, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise FormatError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise FormatError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row


def _jsonl(path: fs.PathLike) -> list[tuple[int, dict[str, Any]]]:
    rows = list(jsonl_rows(path))
    if not rows:
        raise FormatError(f"{path}: no examples")
    return rows


def _need(row: dict[str, Any], field: str, where: str, kind=str) -> Any:
    if field not in row:
        raise FormatError(f"{where}: field {field!r} missing; present fields {sorted(row)}")
    if not isinstance(row[field], kind):
        want = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise FormatError(f"{where}: field {field!r} must be {want}, got {type(row[field]).__name__}")
    return row[field]


# NIV2 templates after FLAN v2's INLINE_FS_PATTERNS["natinst_v2"]: definition, then the instance.
NIV2_TEMPLATES = (Template("{definition}\n\n{input}"), Template("Definition: {definition}\n\nInput: {input}\n"
                                                                 "Output:"),
                  Template("{input}\n\nInstruction: {definition}"))


def _niv2_task(path: fs.PathLike, field: str) -> tuple[fs.PathLike, dict[str, Any], str]:
    try:
        task = json.loads(_read(path))
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    for need in ("Definition", field):
        if need not in task:
            raise FormatError(f"{path}: NIV2 task lacks {need!r}; present fields {sorted(task)}")
    definition = task["Definition"]
    return path, task, " ".join(definition) if isinstance(definition, list) else str(definition)


def read_niv2_exemplars(path: fs.PathLike) -> list[dict[str, Any]]:
    """The task's "Positive Examples" as examples (definition, input, answer, explanation)."""
    path, task, definition = _niv2_task(path, "Positive Examples")
    out = []
    for i, ex in enumerate(task["Positive Examples"]):
        where = f"{path}: Positive Examples[{i}]"
        out.append({"definition": definition, "input": _need(ex, "input", where),
                    "answer": str(_need(ex, "output", where)), "explanation": str(ex.get("explanation", ""))})
    if not out:
        raise FormatError(f"{path}: 'Positive Examples' is empty")
    return out


def read_niv2(path: fs.PathLike) -> list[dict[str, Any]]:
    """One example per instance (its first output is the answer)."""
    path, task, definition = _niv2_task(path, "Instances")
    out = []
    for i, inst in enumerate(task["Instances"]):
        where = f"{path}: Instances[{i}]"
        text = _need(inst, "input", where)
        outputs = _need(inst, "output", where, list)
        if not outputs:
            raise FormatError(f"{where}: field 'output' is empty")
        out.append({"definition": definition, "input": text, "answer": str(outputs[0])})
    if not out:
        raise FormatError(f"{path}: 'Instances' is empty")
    return out


def read_inputs_targets(path: fs.PathLike) -> list[dict[str, Any]]:
    if fs.path(path).suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(fs.path(path).open("rb") if fs.is_remote(path) else path)
        for field in ("inputs", "targets"):
            if field not in table.column_names:
                raise FormatError(f"{path}: column {field!r} missing; columns {table.column_names}")
        return [{"inputs": str(x), "answer": str(y)} for x, y in
                zip(table.column("inputs").to_pylist(), table.column("targets").to_pylist())]
    return [{"inputs": _need(r, "inputs", f"{path}:{n}"), "answer": _need(r, "targets", f"{path}:{n}")}
            for n, r in _jsonl(path)]


CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")  # GSM8K's "<<48/2=24>>"


def read_cot(path: fs.PathLike, *, keep_calculator_annotations: bool = False) -> list[dict[str, Any]]:
    """GSM8K layout: the answer field is the rationale, then "#### " and the final answer."""
    return [cot_row(r, f"{path}:{n}", keep_calculator_annotations) for n, r in _jsonl(path)]


def cot_row(r: dict[str, Any], where: str, keep_calculator_annotations: bool = False) -> dict[str, Any]:
    """One GSM8K record {question, answer: "<rationale> #### <final>"} as {question, rationale, answer}."""
    question, answer = _need(r, "question", where), _need(r, "answer", where)
    if "####" not in answer:
        raise FormatError(f"{where}: field 'answer' has no '#### <final answer>' marker")
    rationale, final = answer.rsplit("####", 1)
    if not keep_calculator_annotations:
        rationale = CALCULATOR_ANNOTATION.sub("", rationale)
    return {"question": question, "rationale": " ".join(rationale.split()), "answer": final.strip()}


def read_options_qa(path: fs.PathLike) -> list[dict[str, Any]]:
    out = []
    for n, r in _jsonl(path):
        where = f"{path}:{n}"
        options = [str(o) for o in _need(r, "options", where, list)]
        answer = str(_need(r, "answer", where, (str, int)))
        if answer not in options:
            raise FormatError(f"{where}: field 'answer' {answer!r} is not one of the options {options}")
        out.append({"question": _need(r, "question", where), "options": options, "answer": answer})
    return out
