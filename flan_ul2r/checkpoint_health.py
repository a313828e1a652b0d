"""Damaged checkpoints: what is wrong with a step directory, said in words, and where it goes.

A checkpoint can be complete for orbax (its step directory was renamed into place, `commit_success.txt`
written) and still be unreadable later: a disk or bucket that lost or truncated a file, a hand edit, a
copy cut short. The checks, cheapest first:

- `file_damage(dir)`: the metadata parses (`state/_METADATA` or `params/_METADATA`, the step's
  `_CHECKPOINT_METADATA`) and the data position is there (`data/metadata`: a JSON object with `draw`);
  no array is read;
- `read_damage(error)`: an error raised while the arrays were read is damage when TensorStore reports a
  missing, short or corrupt file (its OUT_OF_RANGE / DATA_LOSS / NOT_FOUND read errors); anything else (an
  optimizer or model that differs from the one that wrote the checkpoint) is not, and keeps its own error.

Training (`TrainCheckpoints.restore_newest_good`) moves a damaged step aside to `<step>.corrupt` (nothing
is deleted; orbax ignores names that are not step numbers) and falls back to the next newest step;
export-hf, load_model, eval and infer raise `DamagedCheckpointError` naming the directory and the damage
(a damaged data position, which they do not read, is named in a note and the parameters are used).
"""
from __future__ import annotations

import json
import re
from typing import Any

from flan_ul2r import fs

CORRUPT_SUFFIX = ".corrupt"
_READ_ERROR = re.compile(r"\b(OUT_OF_RANGE|DATA_LOSS|NOT_FOUND): (Error (reading|opening|decoding)[^\n]*)")


class DamagedCheckpointError(ValueError):
    """A checkpoint directory whose files cannot be read; the message names the directory and the damage."""


def _json_damage(file: Any, what: str) -> str | None:
    if not file.is_file():
        return f"{what} is missing"
    text = fs.read_text(file)
    if not text.strip():
        return f"{what} is empty ({len(text.encode())} bytes)"
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return f"{what} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    return None


def file_damage(step_dir: fs.PathLike, data_position: bool = True) -> str | None:
    """What is wrong with the files of a training step directory (`state/`, `data/`) or a params-only
    checkpoint (`params/`), without reading any array; None when they look whole. `data_position=False`:
    the arrays only (what a reader of the parameters needs)."""
    folder = fs.path(step_dir)
    arrays = "state" if (folder / "state").is_dir() else "params"
    if not (folder / arrays).is_dir():
        return "it has neither state/ nor params/"
    if (folder / "_CHECKPOINT_METADATA").exists():
        damage = _json_damage(folder / "_CHECKPOINT_METADATA", "_CHECKPOINT_METADATA")
        if damage:
            return damage
    damage = _json_damage(folder / arrays / "_METADATA", f"{arrays}/_METADATA (the array tree)")
    if damage or arrays == "params" or not data_position:
        return damage
    position = folder / "data" / "metadata"
    damage = _json_damage(position, "data/metadata (the data position)")
    if damage:
        return damage
    value = fs.read_json(position)
    if not isinstance(value, dict) or "draw" not in value:
        return f"data/metadata (the data position) has no 'draw': {str(value)[:80]}"
    return None


def read_damage(error: BaseException) -> str | None:
    """The damage an error raised while reading a checkpoint's arrays reveals, or None (not damage)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, json.JSONDecodeError):
            return f"a metadata file is not valid JSON ({current.msg})"
        found = _READ_ERROR.search(str(current))
        if found:
            return f"an array file is unreadable: {found.group(1)}: {found.group(2)[:300]}"
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def damaged(step_dir: fs.PathLike, damage: str) -> DamagedCheckpointError:
    """The error export-hf, load_model, eval and infer raise: the damage, and the steps to use instead."""
    folder = fs.absolute(step_dir)
    others = []
    if folder.parent.name == "checkpoints" and folder.name.isdigit():
        others = sorted(int(p.name) for p in folder.parent.iterdir()
                        if p.name.isdigit() and int(p.name) < int(folder.name))
    advice = (f"use an earlier step: {folder.parent / str(others[-1])} (steps {others})" if others
              else "restore it from a copy, or re-create it")
    return DamagedCheckpointError(f"checkpoint {folder} is damaged: {damage}; {advice}")


def move_aside(step_dir: fs.PathLike) -> Any:
    """Renames a damaged step directory to `<step>.corrupt` (`.corrupt-2`, ... if taken); returns the new
    path. Nothing is deleted."""
    folder = fs.path(step_dir)
    target = folder.parent / f"{folder.name}{CORRUPT_SUFFIX}"
    n = 1
    while target.exists():
        n += 1
        target = folder.parent / f"{folder.name}{CORRUPT_SUFFIX}-{n}"
    fs.move_tree(folder, target)
    return target


def set_aside(directory: fs.PathLike) -> list[str]:
    """The names of the step directories moved aside in a checkpoints directory."""
    folder = fs.path(directory)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if CORRUPT_SUFFIX in p.name)
