"""Errors from inside tf.data, unwrapped: the task, the file, and the line or record at fault.

TensorFlow reports a failure inside a tf.data pipeline as an `OpError` of the iterator, which names
neither the task nor (for TFRecords) the file: a Python exception raised in a generator or
`tf.py_function` arrives as its text with a traceback through TF internals, a damaged TFRecord as
"truncated record at 9897". `describe(tasks, split, error)` turns it into one `DataError` message:

- a document source of ours (`stream_source.DocumentSource`) notes its own failure (`failure`: the
  SourceError naming file:line, sources.py), and the message is that, with the task;
- a Python exception in a user's preprocessor: its type and message, with the tasks;
- a TFRecord read error: the tasks' TFRecord files are scanned (only on this error path, only files long
  enough to hold the reported byte offset) until the damaged one is found; the message names the task,
  the file, the byte offset and how many records before it were whole.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from flan_ul2r import fs

_PYTHON_ERROR = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception)): (.*?)\n(?:Traceback|\s*\[\[)", re.S)
_RECORD_ERROR = re.compile(r"(truncated|corrupted) record at (\d+)")
_TF_NOISE = (re.compile(r"\{\{function_node [^}]*\}\}\s*"), re.compile(r"\s*\[Op:\w+\].*$", re.S))


class DataError(ValueError):
    """A task's data could not be read; the message names the task and the file, line or record."""


def _first_line(text: str) -> str:
    for pattern in _TF_NOISE:
        text = pattern.sub("", text)
    return text.strip().splitlines()[0] if text.strip() else text


def describe(tasks: Sequence[Any], split: str, error: tf.errors.OpError) -> DataError:
    """The DataError to raise instead of `error` (module docstring)."""
    names = [t.name for t in tasks]
    for task in tasks:
        failure = getattr(getattr(task, "source", None), "failure", None)
        if failure:
            return DataError(f"{failure} (task {task.name!r}, split {split!r})")
    text = error.message or str(error)
    found = _RECORD_ERROR.search(text)
    if found:
        return _record_error(tasks, split, int(found.group(2)), _first_line(text))
    found = _PYTHON_ERROR.search(text)
    if found:
        where = f"task {'/'.join(names)} (split {split!r})"
        return DataError(f"{where}: {found.group(1)}: {found.group(2).strip()}")
    return DataError(f"task {'/'.join(names)} (split {split!r}): reading its data failed: "
                     f"{type(error).__name__}: {_first_line(text)}")


def _files(task: Any, split: str) -> list[str]:
    try:
        return [str(f) for f in task.source.list_shards(split)]
    except Exception:  # noqa: BLE001 - a source without files (functions, TFDS): nothing to scan
        return []


def _record_error(tasks: Sequence[Any], split: str, offset: int, detail: str) -> DataError:
    for task in tasks:
        for file in _files(task, split):
            try:
                size = fs.size_and_mtime_ns(file)[0]
            except OSError:
                continue
            if size <= offset:
                continue
            whole, problem = scan_tfrecord(file)
            if problem is not None:
                return DataError(f"{file}: damaged TFRecord at byte offset {offset}, after {whole} whole "
                                 f"records ({problem}) (task {task.name!r}, split {split!r}); repair or "
                                 "remove the file")
    names = "/".join(t.name for t in tasks)
    return DataError(f"task {names} (split {split!r}): a TFRecord file is damaged at byte offset {offset} "
                     f"({detail}); no file of the task's source could be named")


def scan_tfrecord(file: str) -> tuple[int, str | None]:
    """(whole records read, None) for a sound TFRecord file, (whole records before it, TF's message)
    for a damaged one."""
    whole = 0
    try:
        for _ in tf.data.TFRecordDataset(file).as_numpy_iterator():
            whole += 1
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
        return whole, _first_line(e.message)
    return whole, None
