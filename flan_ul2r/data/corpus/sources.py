"""Text sources: readers that yield documents (text + provenance) from local files, never downloading.

A source is a `SourceSpec` (kind, paths, field, options), written on the command line / in gin as
`KIND:PATH[,PATH...][#FIELD][?key=value&...]`, e.g.

    text:/data/*.txt                    a document per line
    text:/books/*.txt?per_file=true     a document per file
    jsonl:/data/*.jsonl#text            field "text" of each JSON line (default field "text")
    tfrecord:/c4/*.tfrecord*#text       tf.train.Example bytes feature (default "text"; .gz -> GZIP)
    tfds:c4/en?split=train&data_dir=/tensorflow_datasets      a prepared TFDS dataset (no download)
    hf:/data/my_dataset#text?split=train    HF `datasets` saved with save_to_disk, or .parquet files
    parquet:/data/*.parquet#content     a string column through pyarrow

Paths may be local or remote (`gs://bucket/data/*.jsonl`, flan_ul2r/fs.py) and glob patterns (sorted; a
pattern matching nothing is an error). Empty (whitespace-only or
null) documents are skipped and counted in `SourceStats`, not errors. Errors name the file and line/record
and the field or value at fault; a source with no document at all raises `EmptySourceError`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flan_ul2r import fs

KINDS = ("text", "jsonl", "tfrecord", "tfds", "hf", "parquet")
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class SourceError(ValueError):
    """Bad source data or spec; the message names the file, line/record and field."""


class EmptySourceError(SourceError):
    """The source holds no non-empty document."""


@dataclass(frozen=True)
class Document:
    text: str
    provenance: str  # "file:line", "file:record N", "tfds:c4/en/train:N", ...


@dataclass
class SourceStats:
    documents: int = 0
    empty_documents: int = 0
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceSpec:
    """Where documents come from. `options`: per_file (text), split/data_dir (tfds, hf), compression
    (tfrecord)."""

    kind: str
    paths: tuple[str, ...]
    field: str = "text"
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    def __str__(self) -> str:
        text = f"{self.kind}:{','.join(self.paths)}"
        if self.field != "text":
            text += f"#{self.field}"
        if self.options:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.options)
        return text

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_OPTIONS = {"text": {"per_file"}, "jsonl": set(), "tfrecord": {"compression"}, "tfds": {"split", "data_dir"},
            "hf": {"split"}, "parquet": set()}


def parse_source_spec(spec: str | SourceSpec) -> SourceSpec:
    """`KIND:PATHS[#FIELD][?k=v&...]` -> SourceSpec (see module docstring)."""
    if isinstance(spec, SourceSpec):
        return spec
    kind, colon, rest = spec.partition(":")
    if not colon or kind not in KINDS:
        raise SourceError(f"source spec {spec!r}: expected KIND:PATH with KIND one of {', '.join(KINDS)}")
    rest, _, query = rest.partition("?")
    rest, _, fld = rest.partition("#")
    paths = tuple(os.path.expanduser(p) for p in rest.split(",") if p)
    if not paths:
        raise SourceError(f"source spec {spec!r}: no path (or tfds name) after '{kind}:'")
    options = []
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or key not in _OPTIONS[kind]:
            raise SourceError(f"source spec {spec!r}: unknown option {item!r} for kind {kind!r}; "
                              f"known: {sorted(_OPTIONS[kind]) or 'none'}")
        options.append((key, value))
    return SourceSpec(kind, paths, fld or "text", tuple(options))


def resolve_files(spec: SourceSpec) -> list[str]:
    """The files a file-based spec names (globs expanded, sorted); error for a pattern matching nothing."""
    files: list[str] = []
    for pattern in spec.paths:
        matches = fs.glob(pattern)
        if not matches:
            what = "pattern matches no file" if fs.has_magic(pattern) else "file does not exist"
            raise FileNotFoundError(f"source {spec}: {pattern!r}: {what}")
        files.extend(matches)
    return files


def read_documents(spec: str | SourceSpec, stats: SourceStats | None = None,
                   allow_empty: bool = False) -> Iterator[Document]:
    """Yields the non-empty documents of `spec` in a deterministic order; counts into `stats`.
    A source without any document raises EmptySourceError unless `allow_empty` (one file of many)."""
    spec = parse_source_spec(spec)
    stats = stats if stats is not None else SourceStats()
    reader = {"text": _read_text, "jsonl": _read_jsonl, "tfrecord": _read_tfrecord, "tfds": _read_tfds,
              "hf": _read_hf, "parquet": _read_parquet}[spec.kind]
    for doc in reader(spec, stats):
        if doc.text is None or not doc.text.strip():
            stats.empty_documents += 1
            continue
        stats.documents += 1
        yield doc
    if stats.documents == 0 and not allow_empty:
        raise EmptySourceError(f"source {spec}: no documents at all ({stats.empty_documents} empty skipped, "
                               f"files: {stats.files[:5]}{'...' if len(stats.files) > 5 else ''})")


def _decode(raw: bytes, where: str, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SourceError(f"{where}: invalid UTF-8 at byte offset {offset + e.start} of the file "
                          f"(byte {raw[e.start:e.start + 1]!r}, {e.reason})") from None


def _lines(path: str) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line number, byte offset of the line, line without newline), streaming."""
    offset = 0
    with fs.path(path).open("rb") as f:
        for number, raw in enumerate(f, 1):
            yield number, offset, raw.rstrip(b"\r\n")
            offset += len(raw)


def _read_text(spec: SourceSpec, stats: SourceStats) -> Iterator[Document]:
    per_file = _BOOL.get(str(spec.option("per_file", "false")).lower())
    if per_file is None:
        raise SourceError(f"source {spec}: per_file={spec.option('per_file')!r}, expected true or false")
    for path in resolve_files(spec):
        stats.files.append(path)
        if per_file:
            raw = fs.read_bytes(path)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                line = raw.count(b"\n", 0, e.start) + 1
                raise SourceError(f"{path}:{line}: invalid UTF-8 at byte offset {e.start} of the file "
                                  f"(byte {raw[e.start:e.start + 1]!r}, {e.reason})") from None
            yield Document(text, path)
            continue
        for number, offset, raw in _lines(path):
            yield Document(_decode(raw, f"{path}:{number}", offset), f"{path}:{number}")


def _field_text(value: Any, where: str, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise SourceError(f"{where}: field {name!r} is a {type(value).__name__}, not a string "
                      f"(value {str(value)[:60]!r})")


def _read_jsonl(spec: SourceSpec, stats: SourceStats) -> Iterator[Document]:
    for path in resolve_files(spec):
        stats.files.append(path)
        for number, offset, raw in _lines(path):
            where = f"{path}:{number}"
            if not raw.strip():
                continue  # blank line between records
            line = _decode(raw, where, offset)
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(f"{where}: not valid JSON ({e.msg} at column {e.colno}): "
                                  f"{line[:80]!r}") from None
            if not isinstance(record, dict):
                raise SourceError(f"{where}: expected a JSON object with field {spec.field!r}, got "
                                  f"{type(record).__name__}")
            if spec.field not in record:
                raise SourceError(f"{where}: field {spec.field!r} missing; present fields "
                                  f"{sorted(record)[:20]}")
            yield Document(_field_text(record[spec.field], where, spec.field), where)


def _read_tfrecord(spec: SourceSpec, stats: SourceStats) -> Iterator[Document]:
    import tensorflow as tf

    for path in resolve_files(spec):
        stats.files.append(path)
        compression = spec.option("compression", "GZIP" if path.endswith(".gz") else "")
        records = tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator()
        number = 0
        try:
            for number, raw in enumerate(records):
                where = f"{path}:record {number}"
                try:
                    example = tf.train.Example.FromString(raw)
                except Exception as e:  # protobuf DecodeError
                    raise SourceError(f"{where}: not a tf.train.Example ({e})") from None
                feats = example.features.feature
                if spec.field not in feats:
                    raise SourceError(f"{where}: feature {spec.field!r} missing; present features "
                                      f"{sorted(feats)[:20]}")
                feat = feats[spec.field]
                if feat.WhichOneof("kind") != "bytes_list":
                    raise SourceError(f"{where}: feature {spec.field!r} is a {feat.WhichOneof('kind')}, "
                                      "not a bytes_list of text")
                values = list(feat.bytes_list.value) or [b""]
                for value in values:  # several values: each is a document
                    yield Document(_decode(value, where, 0), where)
        except tf.errors.DataLossError as e:
            raise SourceError(f"{path}: corrupt TFRecord after record {number} ({e.message})") from None


def _read_tfds(spec: SourceSpec, stats: SourceStats) -> Iterator[Document]:
    import tensorflow_datasets as tfds

    name, split = spec.paths[0], spec.option("split", "train")
    data_dir = spec.option("data_dir") or os.environ.get("TFDS_DATA_DIR")
    try:
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except Exception as e:  # DatasetNotFoundError and friends
        raise SourceError(f"source {spec}: TFDS dataset {name!r} not found ({data_dir=}): {e}") from e
    if not os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json")):
        raise SourceError(
            f"source {spec}: TFDS dataset {name!r} is not prepared under data_dir={data_dir or '~'!r} "
            f"(looked in {builder.data_dir}); this project never downloads: prepare it elsewhere with "
            f"`tfds build {name} --data_dir=DIR` and copy DIR here, then pass data_dir=DIR")
    if spec.field not in builder.info.features:
        raise SourceError(f"source {spec}: feature {spec.field!r} missing; features are "
                          f"{sorted(builder.info.features)}")
    stats.files.append(builder.data_dir)
    ds = builder.as_dataset(split=split, shuffle_files=False, read_config=tfds.ReadConfig(
        shuffle_seed=None, interleave_cycle_length=1))
    for number, example in enumerate(ds.as_numpy_iterator()):
        where = f"tfds:{name}/{split}:{number}"
        value = example[spec.field]
        if not isinstance(value, bytes):
            raise SourceError(f"{where}: feature {spec.field!r} is {type(value).__name__}, not text")
        yield Document(_decode(value, where, 0), where)


def _read_hf(spec: SourceSpec, stats: SourceStats) -> Iterator[Document]:
    paths = resolve_files(spec)
    if all(p.endswith(".parquet") for p in paths):
        yield from _read_parquet(spec, stats, paths)
        return
    import datasets

    split = spec.option("split")
    for path in paths:
        try:
            ds = datasets.load_from_disk(path)
        except FileNotFoundError as e:
            raise SourceError(f"{path}: not a HF dataset saved with save_to_disk, nor .parquet ({e})") from e
        if isinstance(ds, datasets.DatasetDict):
            if split is None and len(ds) != 1:
                raise SourceError(f"{path}: dataset has splits {sorted(ds)}; choose one with ?split=NAME")
            if split is not None and split not in ds:
                raise SourceError(f"{path}: split {split!r} missing; splits are {sorted(ds)}")
            ds = ds[split or next(iter(ds))]
        if spec.field not in ds.column_names:
            raise SourceError(f"{path}: field {spec.field!r} missing; present fields {ds.column_names}")
        stats.files.append(path)
        row = 0
        for batch in ds.select_columns([spec.field]).iter(batch_size=1000):
            for value in batch[spec.field]:
                where = f"{path}:row {row}"
                yield Document(_field_text(value, where, spec.field), where)
                row += 1


def _read_parquet(spec: SourceSpec, stats: SourceStats, paths: list[str] | None = None
                  ) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in paths or resolve_files(spec):
        stats.files.append(path)
        try:
            pf = pq.ParquetFile(fs.path(path).open("rb") if fs.is_remote(path) else path)
        except (pa.ArrowInvalid, OSError) as e:
            raise SourceError(f"{path}: not a Parquet file ({e})") from e
        names = pf.schema_arrow.names
        if spec.field not in names:
            raise SourceError(f"{path}: field {spec.field!r} missing; present fields {names}")
        typ = pf.schema_arrow.field(spec.field).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise SourceError(f"{path}: field {spec.field!r} has type {typ}, not a string")
        row = 0
        for batch in pf.iter_batches(columns=[spec.field], batch_size=1024):
            for value in batch.column(0).to_pylist():
                yield Document(value, f"{path}:row {row}")
                row += 1


def source_fingerprint(spec: str | SourceSpec) -> dict[str, Any]:
    """What the corpus cache keys on: the spec and each input file's path, size and mtime."""
    spec = parse_source_spec(spec)
    if spec.kind == "tfds":
        data_dir = spec.option("data_dir") or os.environ.get("TFDS_DATA_DIR") or ""
        roots = [os.path.join(os.path.expanduser(data_dir or "~/tensorflow_datasets"), spec.paths[0])]
    else:
        roots = resolve_files(spec)
    files = []
    for root in roots:
        for path in fs.files_under(root):
            size, mtime_ns = fs.size_and_mtime_ns(path)
            files.append([path if fs.is_remote(path) else os.path.abspath(path), size, mtime_ns])
    return {"spec": str(spec), "files": files}
