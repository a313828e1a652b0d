"""Benchmark files (local, or remote such as gs://, through flan_ul2r.fs): every missing or malformed
file is an error naming the path (and the row or example), and which macro points at the directory."""
from __future__ import annotations

import json
from typing import Any

from etils import epath

from flan_ul2r import fs


class BenchmarkFileError(ValueError):
    """A benchmark file that is missing or malformed; the message names the file and row/example."""


def require_dir(path: str | epath.Path | None, macro: str, expected: str) -> epath.Path:
    """The benchmark's root directory; `expected` describes the layout for the error message."""
    if path is None or str(path) in ("", "None"):
        raise BenchmarkFileError(f"{macro} is not set: point it at a directory holding {expected} "
                                 f"(--gin.{macro}=/path)")
    p = fs.path(path)
    if not p.is_dir():
        raise BenchmarkFileError(f"{macro}={path}: no such directory (expected {expected})")
    return p


def require_file(path: epath.Path, macro: str, what: str = "") -> epath.Path:
    if not path.is_file():
        hint = f" ({what})" if what else ""
        raise BenchmarkFileError(f"{path}: missing file{hint}; check {macro}")
    return path


def read_jsonl(path: epath.Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line (the Flan readers' JSONL parser, same messages)."""
    from flan_ul2r.data.flan.formats import FormatError, jsonl_rows

    try:
        rows = list(jsonl_rows(path))
    except FormatError as e:
        raise BenchmarkFileError(str(e)) from None
    if not rows:
        raise BenchmarkFileError(f"{path}: no examples")
    return rows


def read_json(path: epath.Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BenchmarkFileError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def json_list(path: epath.Path, key: str, expected: str) -> list[Any]:
    """`data[key]` of a JSON file whose top level is an object holding a list there."""
    data = read_json(path)
    rows = data.get(key) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise BenchmarkFileError(f"{path}: expected {expected}")
    return rows


def need_str(obj: dict[str, Any], field: str, where: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise BenchmarkFileError(f"{where}: field {field!r} missing or not a string (fields: {sorted(obj)})")
    return str(value)
