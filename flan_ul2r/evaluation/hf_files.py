"""Hugging Face copies of a benchmark: parquet files and `datasets.save_to_disk` folders, read with pyarrow
(local or remote paths through flan_ul2r.fs; nothing is downloaded, `datasets` is not needed).

A split of a config (an MMLU subject, a BBH task, an MGSM language, GSM8K's `main`) is looked for in the
layouts these copies come in, in this order:

- parquet as the Hub stores it: `<config>/<split>-00000-of-00001.parquet` (cais/mmlu, lukaemon/bbh,
  openai/gsm8k), the Hub's parquet conversion `<config>/<split>/0000.parquet`, or a single-config dataset's
  `<split>-*.parquet` / `data/<split>-*.parquet`;
- `datasets.save_to_disk` output: `[<config>/]dataset_dict.json` beside one folder per split, each holding
  `state.json`, `dataset_info.json` and `data-0000N-of-0000M.arrow` (Arrow IPC streams).

`find_split` says where a split is (or None); `read_rows` reads it as a list of dicts.
"""
from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from typing import Any

from etils import epath

from flan_ul2r.evaluation.files import BenchmarkFileError

LAYOUTS = ("parquet (<config>/<split>-*.parquet, <config>/<split>/*.parquet, [data/]<split>-*.parquet)",
           "datasets.save_to_disk ([<config>/]dataset_dict.json + <split>/data-*.arrow)")


@dataclasses.dataclass(frozen=True)
class HFSplit:
    """A split found on disk: its format ("parquet" or "save_to_disk") and its files, in order."""

    kind: str
    files: tuple[epath.Path, ...]

    def __str__(self) -> str:
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0]} (+{len(self.files) - 1})"


def _glob(folder: epath.Path, pattern: str) -> list[epath.Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def _parquet(root: epath.Path, config: str | None, split: str) -> list[epath.Path]:
    folders = ([root / config, root / config / "data"] if config else []) + [root, root / "data"]
    for folder in folders:
        found = _glob(folder, f"{split}-*.parquet") or _glob(folder / split, "*.parquet")
        if found:
            return found
    return []


def _saved(root: epath.Path, config: str | None, split: str) -> list[epath.Path]:
    for folder in ([root / config] if config else []) + [root]:
        if not (folder / "dataset_dict.json").is_file() and not (folder / split / "state.json").is_file():
            continue
        state = folder / split / "state.json"
        if state.is_file():
            names = [f["filename"] for f in json.loads(state.read_text()).get("_data_files", [])]
            files = [folder / split / n for n in names] or _glob(folder / split, "*.arrow")
            if files:
                return files
    return []


def find_split(root: epath.Path, splits: str | Sequence[str], config: str | None = None) -> HFSplit | None:
    """The first of `splits` (names or aliases, e.g. ("val", "validation")) found under `root` for `config`
    in a Hugging Face layout (module docstring), else None."""
    for split in ([splits] if isinstance(splits, str) else list(splits)):
        files = _parquet(root, config, split)
        if files:
            return HFSplit("parquet", tuple(files))
        files = _saved(root, config, split)
        if files:
            return HFSplit("save_to_disk", tuple(files))
    return None


def has_hf_files(root: epath.Path) -> bool:
    """Whether `root` holds any parquet file or save_to_disk folder (to name the format in errors)."""
    patterns = ("*.parquet", "*/*.parquet", "*/*/*.parquet", "dataset_dict.json", "*/dataset_dict.json",
                "*/state.json", "*/*/state.json")  # no "**": remote stores would list everything
    return any(_glob(root, p) for p in patterns)


def _table(path: epath.Path, kind: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = io.BytesIO(path.read_bytes())
    try:
        return pq.read_table(data) if kind == "parquet" else pa.ipc.open_stream(data).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise BenchmarkFileError(f"{path}: not a readable {kind} file ({e})") from None


def read_rows(found: HFSplit, columns: Sequence[str] = (), where: str = "") -> list[dict[str, Any]]:
    """The split's rows; `columns` must all be present (an error names the file, the missing and the
    present columns, and `where`: which layout was expected)."""
    rows: list[dict[str, Any]] = []
    for path in found.files:
        table = _table(path, found.kind)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise BenchmarkFileError(f"{path}: {found.kind} file lacks column(s) {missing} (has "
                                     f"{table.column_names}){'; expected ' + where if where else ''}")
        rows.extend(table.to_pylist())
    return rows


def nothing_found(macro: str, root: epath.Path, original: str, hf_layout: str) -> BenchmarkFileError:
    """The error when neither the original layout nor a Hugging Face copy is under `root`."""
    seen = "; it holds parquet / save_to_disk files, but not of this layout" if has_hf_files(root) else ""
    return BenchmarkFileError(f"{macro}={root}: no benchmark files found{seen}. Looked for the original "
                              f"layout ({original}) and a Hugging Face copy ({hf_layout}; formats: "
                              f"{'; '.join(LAYOUTS)})")
