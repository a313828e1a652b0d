"""User paths on any filesystem: local disk, `gs://` and what else etils `epath` speaks.

Every path a user gives (MODEL_DIR, INITIAL_CHECKPOINT_PATH, corpora, instruction data, HF import/export
directories) goes through this module, never through `pathlib` or `open()`: `epath.Path` is what orbax
uses for checkpoints, and on `gs://` it reaches Cloud Storage through `tf.io.gfile` (installed with
TensorFlow; `EPATH_USE_TF=false` switches it to fsspec/gcsfs). Local caches (the token corpus under
`~/.cache/flan_ul2r`) stay local.

    from flan_ul2r import fs
    d = fs.path("gs://bucket/run1")
    fs.write_json(d / "train_info.json", {...}); fs.read_json(d / "train_info.json")
    with fs.local_copy("gs://bucket/tok/tokenizer.json") as local: ...   # for libraries that need a file
"""
from __future__ import annotations

import contextlib
import glob as stdlib_glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from etils import epath

PathLike = str | os.PathLike
_MAGIC = ("*", "?", "[")


def path(p: PathLike) -> epath.Path:
    """An epath.Path; `~` is expanded on local paths."""
    text = os.fspath(p)
    return epath.Path(text if is_remote(text) else os.path.expanduser(text))


def is_remote(p: PathLike) -> bool:
    """True for `scheme://...` paths (gs://, s3://, ...), False for local ones."""
    return "://" in os.fspath(p)


def absolute(p: PathLike) -> epath.Path:
    """Local paths made absolute (orbax requires it); remote paths as they are."""
    return path(p) if is_remote(p) else path(p).absolute()


def read_text(p: PathLike) -> str:
    return path(p).read_text(encoding="utf-8")


def read_bytes(p: PathLike) -> bytes:
    return path(p).read_bytes()


def umask() -> int:
    """The process's file-creation mask (read from /proc where it can be, else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(p: PathLike, text: str) -> None:
    """Writes a whole file at once: a local file through a temporary file and a rename (a reader never
    sees half a file), with the mode a plain `open()` would give (0644 under umask 022: mkstemp's own
    0600 would hide run files from the rest of a team on shared storage); an object store replaces the
    object in one upload."""
    target = path(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_remote(target):
        target.write_text(text, encoding="utf-8")
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=os.fspath(target.parent))
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.fspath(target))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_json(p: PathLike) -> Any:
    return json.loads(read_text(p))


def write_json(p: PathLike, value: Any, indent: int | None = 1) -> None:
    write_text(p, json.dumps(value, indent=indent, default=str))


def has_magic(pattern: str) -> bool:
    return any(c in pattern for c in _MAGIC)


def glob(pattern: PathLike) -> list[str]:
    """Sorted matches of a pattern such as `gs://b/data/*.jsonl` or `~/data/**/*.txt` (`**` recurses on
    local paths only: on object stores it would list every object below)."""
    text = os.fspath(path(pattern))
    if not has_magic(text):
        return [text] if path(text).exists() else []
    if not is_remote(text):
        return sorted(stdlib_glob.glob(text, recursive=True))
    parts = text.split("/")
    first = next(i for i, part in enumerate(parts) if has_magic(part))
    base = "/".join(parts[:first]) or ("/" if text.startswith("/") else ".")
    if first <= 2:  # "gs:", "", "bucket" must stay together
        raise ValueError(f"{text}: a remote pattern needs a literal bucket name")
    base_path = path(base)
    if not base_path.exists():
        return []
    return sorted(os.fspath(m) for m in base_path.glob("/".join(parts[first:])))


def files_under(root: PathLike) -> list[str]:
    """`root` itself if it is a file, else every file below it, sorted."""
    top = path(root)
    if top.is_file():
        return [os.fspath(top)]
    return sorted(os.fspath(path(folder) / name) for folder, _, names in top.walk() for name in names)


def size_and_mtime_ns(p: PathLike) -> tuple[int, int]:
    """(bytes, modification time in ns) of a file, what caches key on (remote stores: whole seconds)."""
    if not is_remote(p):
        st = os.stat(os.fspath(path(p)))
        return int(st.st_size), int(st.st_mtime_ns)
    st = path(p).stat()
    return int(st.length), int(st.mtime) * 1_000_000_000


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Copies one file, across filesystems (local -> gs://, gs:// -> local, ...)."""
    target = path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    with path(src).open("rb") as f, target.open("wb") as out:
        shutil.copyfileobj(f, out, 16 << 20)


def copy_tree(src: PathLike, dst: PathLike) -> None:
    """Copies a directory's files (recursively) to `dst`, across filesystems."""
    src_path = path(src)
    for child in src_path.iterdir():
        if child.is_dir():
            copy_tree(child, path(dst) / child.name)
        else:
            copy_file(child, path(dst) / child.name)


def move_tree(src: PathLike, dst: PathLike) -> None:
    """Moves a directory to `dst` (which must not exist): a rename on a local disk (atomic); on an object
    store, where folders are name prefixes, a copy of every object and then the removal of the source."""
    source, target = path(src), path(dst)
    if target.exists():
        raise FileExistsError(f"{target}: exists; not moving {source} over it")
    if not is_remote(source) and not is_remote(target):
        os.rename(os.fspath(source), os.fspath(target))
        return
    copy_tree(source, target)
    source.rmtree()


def is_empty_dir(p: PathLike) -> bool:
    """True when `p` is missing or a directory without entries."""
    folder = path(p)
    return not folder.exists() or (folder.is_dir() and next(iter(folder.iterdir()), None) is None)


@contextlib.contextmanager
def local_copy(p: PathLike) -> Iterator[str]:
    """A local file name for `p`, for libraries that only open local files (safetensors' mmap,
    SentencePiece, pyarrow): `p` itself when local, else a temporary copy deleted afterwards."""
    if not is_remote(p):
        yield os.fspath(path(p))
        return
    src = path(p)
    fd, tmp = tempfile.mkstemp(suffix=f"-{src.name}")
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as f:
            shutil.copyfileobj(f, out, 16 << 20)
        yield tmp
    finally:
        os.remove(tmp)
