"""Flan Collection exports as training tasks: the JSONL / Parquet files FLAN v2's export writes, one row
per rendered example with `inputs`, `targets`, `task_source`, `task_name`, `template_type`
(google-research/FLAN `flan/v2/` export; Longpre et al. 2023).

The family comes from `task_source` (Flan2021 -> Muffin, T0 -> T0-SF, NIv2, CoT, Dialog); inside a
family every `task_name` is a task, mixed examples-proportionally with the family's per-task cap
(Chung et al. 2022 Table 23). Each family becomes one seekable task whose records are "slots":
task t owns min(n_t, cap) of them, and over epochs its slots walk through all n_t rows (a fixed
shuffle), so a capped task keeps its rate and still shows every row in time. Rows are tokenized once and
cached under `$FLAN_UL2R_CACHE/flan_collection/` (keyed by the files' sizes and mtimes and the
vocabulary). A bad row stops the build with the file, line (or Parquet row) and field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from etils import epath

from flan_ul2r import fs
from flan_ul2r.data.corpus.token_cache import cache_dir, encode_documents, vocabulary_key
from flan_ul2r.data.flan.formats import FormatError, jsonl_rows
from flan_ul2r.data.flan.pieces import gather_ranges

FIELDS = ("inputs", "targets", "task_source", "task_name", "template_type")
TEMPLATE_TYPES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")  # the export's template_type values
# task_source (lower case, letters and digits only) -> family
TASK_SOURCES = {
    "flan2021": "muffin",
    "flan": "muffin",
    "muffin": "muffin",
    "t0": "t0sf",
    "t0sf": "t0sf",
    "niv2": "niv2",
    "natinstv2": "niv2",
    "cot": "cot",
    "dialog": "dialog",
}
FORMAT_VERSION = 1
_BATCH = 4096
_SHUFFLE_SEED = 20230131  # fixed row order inside a task (Flan Collection paper date)


def style_of(template_type: str, family: str) -> str:
    """The row's style: its template_type, CoT families' rows as `cot` / `fs_cot`."""
    if family == "cot":
        return "fs_cot" if template_type.startswith("fs") else "cot"
    return template_type


def _rows(path: epath.Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        with path.open("rb") as f:
            n = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH):
                for row in batch.to_pylist():
                    yield f"{path}: row {n}", row
                    n += 1
        return
    for lineno, row in jsonl_rows(path):
        yield f"{path}:{lineno}", row


def read_rows(path: fs.PathLike) -> Iterator[dict[str, str]]:
    """Validated rows of one export file (local or remote): the five fields, plus `family` and `style`."""
    path = fs.path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    for where, row in _rows(path):
        for field in FIELDS:
            if field not in row or row[field] is None:
                raise FormatError(f"{where}: field {field!r} missing; present fields {sorted(row)}")
            if not isinstance(row[field], str):
                raise FormatError(
                    f"{where}: field {field!r} must be a string, got {type(row[field]).__name__}"
                )
        source = re.sub(r"[^a-z0-9]", "", row["task_source"].lower())
        if source not in TASK_SOURCES:
            raise FormatError(
                f"{where}: field 'task_source' is {row['task_source']!r}; known sources "
                f"{sorted(TASK_SOURCES)}"
            )
        if row["template_type"] not in TEMPLATE_TYPES:
            raise FormatError(
                f"{where}: field 'template_type' is {row['template_type']!r}; known types "
                f"{list(TEMPLATE_TYPES)}"
            )
        family = TASK_SOURCES[source]
        yield {
            **{f: row[f] for f in FIELDS},
            "family": family,
            "style": style_of(row["template_type"], family),
        }


def expand(paths: str | Sequence[str]) -> list[epath.Path]:
    """The export files named by paths or patterns, local or remote (`gs://b/flan/*.parquet`)."""
    patterns = [paths] if isinstance(paths, str) else list(paths)
    files = [fs.path(f) for f in sorted({f for p in patterns for f in (fs.glob(p) or [p])})]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"flan collection: {f}: no such file")
    return files


class CollectionTable:
    """Tokenized rows of a collection: ids flat + offsets for inputs and targets, a task id per row."""

    ARRAYS = ("inputs", "inputs_offsets", "targets", "targets_offsets", "task", "style")

    def __init__(
        self, arrays: Mapping[str, np.ndarray], tasks: list[str], families: list[str], styles: list[str]
    ):
        self.arrays, self.tasks, self.families, self.styles = dict(arrays), tasks, families, styles

    @classmethod
    def build(cls, files: Sequence[epath.Path], vocabulary: Any) -> CollectionTable:
        from tqdm import tqdm

        tasks: dict[str, int] = {}
        families: list[str] = []
        styles = ["zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "cot", "fs_cot"]
        parts: dict[str, list[np.ndarray]] = {"inputs": [], "targets": []}
        task_ids, style_ids, pending = [], [], []

        def flush() -> None:
            for key in ("inputs", "targets"):
                parts[key] += encode_documents([r[key] for r in pending], vocabulary)
            pending.clear()

        for row in tqdm(
            (r for f in files for r in read_rows(f)), desc="flan collection", unit=" rows", delay=3.0
        ):
            if row["task_name"] not in tasks:
                tasks[row["task_name"]] = len(tasks)
                families.append(row["family"])
            elif families[tasks[row["task_name"]]] != row["family"]:
                raise FormatError(
                    f"flan collection: task {row['task_name']!r} has rows from two task sources "
                    f"({families[tasks[row['task_name']]]} and {row['family']})"
                )
            task_ids.append(tasks[row["task_name"]])
            style_ids.append(styles.index(row["style"]))
            pending.append(row)
            if len(pending) == _BATCH:
                flush()
        flush()
        if not task_ids:
            raise FormatError(f"flan collection: no rows in {[str(f) for f in files]}")
        arrays = {"task": np.array(task_ids, np.int32), "style": np.array(style_ids, np.int8)}
        for key in ("inputs", "targets"):
            lengths = [len(p) for p in parts[key]]
            arrays[key] = np.concatenate(parts[key]).astype(np.int32)
            arrays[key + "_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(arrays, list(tasks), families, styles)

    def save(self, directory: epath.Path) -> None:
        for key in self.ARRAYS:
            np.save(directory / f"{key}.npy", self.arrays[key])
        meta = {"tasks": self.tasks, "families": self.families, "styles": self.styles}
        (directory / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: epath.Path) -> CollectionTable:
        meta = json.loads((directory / "meta.json").read_text())
        arrays = {k: np.load(directory / f"{k}.npy", mmap_mode="r") for k in cls.ARRAYS}
        return cls(arrays, meta["tasks"], meta["families"], meta["styles"])

    def rows(self, key: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offsets = self.arrays[key + "_offsets"]
        return gather_ranges(self.arrays[key], offsets[rows], offsets[rows + 1] - offsets[rows])


def load_collection(paths: str | Sequence[str], vocabulary: Any) -> CollectionTable:
    """The tokenized collection, from the cache when the files and vocabulary are unchanged."""
    files = expand(paths)
    key = json.dumps(
        {
            "version": FORMAT_VERSION,
            "files": [[str(fs.absolute(f)), *fs.size_and_mtime_ns(f)] for f in files],
            "vocabulary": vocabulary_key(vocabulary),
        },
        sort_keys=True,
        default=str,
    )
    target = fs.path(cache_dir()) / "flan_collection" / hashlib.sha256(key.encode()).hexdigest()[:20]
    if (target / "meta.json").is_file():
        return CollectionTable.load(target)
    table = CollectionTable.build(files, vocabulary)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = fs.path(tempfile.mkdtemp(dir=target.parent))
    try:
        table.save(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process built it first
    return table


class CollectionFamily:
    """One family of a collection as a block source (instruction_tasks.BlockSource): slot r is row
    `rows_t[(j + epoch * c_t) mod n_t]` of task t (its j-th slot, c_t = min(n_t, cap) slots)."""

    def __init__(self, table: CollectionTable, family: str, cap: int, eos_id: int):
        self.table, self.family, self.eos_id = table, family, int(eos_id)
        task_of_row = np.asarray(table.arrays["task"])
        members = [t for t, f in enumerate(table.families) if f == family]
        if not members:
            raise ValueError(f"flan collection: no tasks of family {family!r}")
        order = np.argsort(task_of_row, kind="stable")
        counts = np.bincount(task_of_row, minlength=len(table.tasks))
        starts = np.concatenate([[0], np.cumsum(counts)])
        self.task_ids = np.array(members, np.int64)
        self.rows = [
            order[starts[t] : starts[t + 1]][np.random.default_rng([_SHUFFLE_SEED, t]).permutation(counts[t])]
            for t in members
        ]
        self.sizes = np.array([counts[t] for t in members], np.int64)
        self.caps = np.minimum(self.sizes, int(cap))
        self.flat_rows = np.concatenate(self.rows)
        self.row_start = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.slot_task = np.repeat(np.arange(len(members)), self.caps)
        self.slot_index = np.arange(len(self.slot_task)) - np.repeat(
            np.cumsum(self.caps) - self.caps, self.caps
        )
        self._names = np.array([table.tasks[t].encode() for t in members], object)
        self._styles = np.array([s.encode() for s in table.styles], object)

    def num_records(self, split: str) -> int:
        return len(self.slot_task)

    def block(self, indices: np.ndarray, seeds: np.ndarray, split: str, inputs_length: int) -> tuple:
        indices = np.asarray(indices, np.int64).reshape(-1)
        task = self.slot_task[indices]
        epoch = np.asarray(seeds, np.int64).reshape(-1, 2)[:, 1] // len(self.slot_task)
        offset = (self.slot_index[indices] + epoch * self.caps[task]) % self.sizes[task]
        rows = self.flat_rows[self.row_start[task] + offset]
        out = []
        for key in ("inputs", "targets"):
            flat, lengths = self.table.rows(key, rows)
            out += [np.insert(flat, np.cumsum(lengths), self.eos_id).astype(np.int32), lengths + 1]
        styles = self._styles[np.asarray(self.table.arrays["style"])[rows]]
        return (*out, styles, self._names[task])


def register_flan_collection(
    paths: str | Sequence[str], vocabulary: Any, caps: Mapping[str, int], prefix: str = "flan_collection"
) -> list[str]:
    """Registers one seekable task per family of the collection (`{prefix}_{family}`), joining `flan`."""
    from flan_ul2r.data.flan import instruction_tasks

    table = load_collection(paths, vocabulary)
    names = []
    for family in sorted(set(table.families)):
        source = CollectionFamily(table, family, caps.get(family, 2**62), vocabulary.eos_id)
        name = f"{prefix}_{family}"
        instruction_tasks.register_renderer_task(name, source, vocabulary, ("train",))
        instruction_tasks.add_member(name, family, source.num_records("train"))
        names.append(name)
    return names
