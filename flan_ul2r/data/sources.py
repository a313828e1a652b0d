"""Readers for real text sources; each yields documents and says exactly where a bad record is.

A source is written `KIND:PATHS[#FIELD]` (PATHS may be a glob or comma-separated list):

| kind | reads | field |
|---|---|---|
| `text` | a document per line of plain-text files | - |
| `textfile` | a document per file | - |
| `jsonl` | one JSON object per line | default `text` |
| `tfrecord` | `tf.train.Example` records, a bytes feature | default `text` |
| `parquet` | Parquet files through pyarrow | default `text` |
| `hf` | an HF `datasets` folder from `save_to_disk` (split `train` of a DatasetDict) | default `text` |
| `tfds` | a prepared TFDS dataset `NAME[/CONFIG]` (`data_dir=` option; never downloads) | default `text` |

Options follow `?`: `tfds:c4/en?split=train&data_dir=/data/tfds#text`.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

KINDS = ("text", "textfile", "jsonl", "tfrecord", "parquet", "hf", "tfds")


class SourceError(ValueError):
    """A source record or file that cannot be read; the message names file, line and field."""


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    kind: str
    paths: str
    field: str = "text"
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)

    def files(self) -> list[str]:
        """The files a path pattern names; an error names each pattern that matches nothing."""
        out: list[str] = []
        for pattern in self.paths.split(","):
            matched = sorted(glob.glob(os.path.expanduser(pattern)))
            if not matched:
                raise SourceError(f"{self.kind} source: no such file {pattern!r}")
            out.extend(matched)
        return out

    def cache_key(self) -> dict[str, Any]:
        key: dict[str, Any] = dataclasses.asdict(self)
        if self.kind != "tfds":
            key["files"] = [(f, os.path.getsize(f), os.path.getmtime(f)) for f in self.files()]
        return key


def parse_source_spec(spec: str) -> SourceSpec:
    """`jsonl:/data/*.jsonl#body` -> SourceSpec(kind="jsonl", paths="/data/*.jsonl", field="body")."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS:
        raise SourceError(f"source {spec!r}: expected KIND:PATH[#FIELD] with KIND one of {', '.join(KINDS)}")
    rest, _, field = rest.partition("#")
    paths, _, query = rest.partition("?")
    if not paths:
        raise SourceError(f"source {spec!r}: no path")
    return SourceSpec(kind, paths, field or "text", tuple(parse_qsl(query)))


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SourceError(f"{where}: not UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None


def _field(record: dict, field: str, where: str) -> str:
    if field not in record:
        raise SourceError(f"{where}: field {field!r} missing; present fields: {sorted(record)[:20]}")
    value = record[field]
    if isinstance(value, bytes):
        return _decode(value, f"{where}: field {field!r}")
    if not isinstance(value, str):
        raise SourceError(f"{where}: field {field!r} is {type(value).__name__}, not a string")
    return value


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            yield lineno, raw.rstrip(b"\r\n")


def read_documents(spec: SourceSpec | str) -> Iterator[str]:
    """Yields every document of a source (empty ones too: the corpus builder counts and skips them)."""
    spec = parse_source_spec(spec) if isinstance(spec, str) else spec
    reader = {"text": _read_text, "textfile": _read_textfile, "jsonl": _read_jsonl,
              "tfrecord": _read_tfrecord, "parquet": _read_parquet, "hf": _read_hf, "tfds": _read_tfds}
    if spec.kind not in reader:
        raise SourceError(f"source kind {spec.kind!r}: expected one of {', '.join(KINDS)}")
    yield from reader[spec.kind](spec)


def _read_text(spec: SourceSpec) -> Iterator[str]:
    for path in spec.files():
        for lineno, raw in _lines(path):
            yield _decode(raw, f"{path}:{lineno}")


def _read_textfile(spec: SourceSpec) -> Iterator[str]:
    for path in spec.files():
        yield _decode(Path(path).read_bytes(), path)


def _read_jsonl(spec: SourceSpec) -> Iterator[str]:
    for path in spec.files():
        for lineno, raw in _lines(path):
            where = f"{path}:{lineno}"
            if not raw.strip():
                continue
            try:
                record = json.loads(_decode(raw, where))
            except json.JSONDecodeError as e:
                raise SourceError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise SourceError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield _field(record, spec.field, where)


def _read_tfrecord(spec: SourceSpec) -> Iterator[str]:
    import tensorflow as tf

    for path in spec.files():
        for i, raw in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
            where = f"{path}: record {i}"
            example = tf.train.Example.FromString(raw)
            feature = example.features.feature
            if spec.field not in feature:
                raise SourceError(f"{where}: feature {spec.field!r} missing; present: {sorted(feature)}")
            values = feature[spec.field].bytes_list.value
            if len(values) != 1:
                raise SourceError(f"{where}: feature {spec.field!r}: {len(values)} values, expected 1")
            yield _decode(values[0], f"{where}: feature {spec.field!r}")


def _read_parquet(spec: SourceSpec) -> Iterator[str]:
    import pyarrow.parquet as pq

    for path in spec.files():
        table = pq.ParquetFile(path)
        if spec.field not in table.schema_arrow.names:
            raise SourceError(f"{path}: column {spec.field!r} missing; columns: {table.schema_arrow.names}")
        row = 0
        for batch in table.iter_batches(columns=[spec.field]):
            for value in batch.column(0).to_pylist():
                row += 1
                value = "" if value is None else value
                yield _field({spec.field: value}, spec.field, f"{path}: row {row}")


def _read_hf(spec: SourceSpec) -> Iterator[str]:
    import datasets

    path = spec.paths
    if not os.path.isdir(path):
        raise SourceError(f"hf source: no such directory {path!r} (expected a datasets.save_to_disk folder)")
    ds = datasets.load_from_disk(path)
    if isinstance(ds, datasets.DatasetDict):
        split = spec.option("split", "train")
        if split not in ds:
            raise SourceError(f"{path}: split {split!r} missing; splits: {list(ds)}")
        ds = ds[split]
    if spec.field not in ds.column_names:
        raise SourceError(f"{path}: column {spec.field!r} missing; columns: {ds.column_names}")
    for row, value in enumerate(ds[spec.field], 1):
        yield _field({spec.field: value if value is not None else ""}, spec.field, f"{path}: row {row}")


def _read_tfds(spec: SourceSpec) -> Iterator[str]:
    import tensorflow_datasets as tfds

    split = spec.option("split", "train")
    try:
        builder = tfds.builder(spec.paths, data_dir=spec.option("data_dir"))
    except Exception as e:  # unknown name: tfds lists close matches
        raise SourceError(f"tfds source {spec.paths!r}: {e}") from None
    if not builder.is_prepared():
        raise SourceError(f"tfds source {spec.paths!r}: not prepared in {builder.data_dir}; flan-ul2r never "
                          "downloads - prepare it with `tfds build` and pass ?data_dir=...")
    for i, record in enumerate(builder.as_dataset(split=split).as_numpy_iterator()):
        yield _field(record, spec.field, f"tfds {spec.paths}[{split}] record {i}")
