"""An output directory written all at once: into a staging folder beside it, then renamed into place.

`convert export-hf --out DIR` must neither mix its files with what DIR held (a half-overwritten model
that loads with the wrong tokenizer) nor leave half a model when it fails. So:

- a non-empty DIR is refused unless `overwrite` (the error names it and `--overwrite`);
- the files go to `.DIR.staging-<pid>` in the same parent folder (same filesystem: the rename is atomic
  on a local disk), created with the process's umask like any `mkdir`;
- on success an existing DIR is moved to `.DIR.old-<pid>`, the staging folder renamed to DIR, and the
  old copy deleted; on failure the staging folder is deleted and DIR is untouched.

On object stores a "rename" is a copy and a delete (`fs.move_tree`): still all-or-nothing for a reader
that waits for the command to finish, not atomic.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from flan_ul2r import fs
from flan_ul2r.errors import ConfigError

T = TypeVar("T")


def check_output_dir(out: fs.PathLike, overwrite: bool, flag: str = "--out") -> None:
    """Refuses a non-empty output directory (or a file in its place) unless `overwrite`."""
    target = fs.path(out)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {target}: is a file, not a directory")
    if not overwrite and not fs.is_empty_dir(target):
        names = sorted(p.name for p in target.iterdir())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ConfigError(f"{flag} {target}: not empty ({shown}); give an empty or new directory, or "
                          "--overwrite to replace its contents")


def write_staged(out: fs.PathLike, overwrite: bool, write: Callable[[Any], T]) -> T:
    """Runs `write(staging_dir)`, then puts the staging folder in place of `out` (module docstring)."""
    check_output_dir(out, overwrite)
    target = fs.path(out)
    staging = target.parent / f".{target.name}.staging-{os.getpid()}"
    if staging.exists():
        staging.rmtree()
    staging.mkdir(parents=True)
    try:
        result = write(staging)
    except BaseException:
        staging.rmtree()
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        fs.move_tree(target, old)
    fs.move_tree(staging, target)
    if old.exists():
        old.rmtree()
    return result
