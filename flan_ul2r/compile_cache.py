"""A persistent cache of compiled XLA programs, on by default for every `flan-ul2r` verb.

A train step or a decoding loop compiles once per shape, and a process that starts again compiles it
again: a resumed run after preemption, a pipeline stage or evaluation with the shapes of an earlier one
(the 2x2's four models have one shape), a second `flan-ul2r eval` of the same model. JAX's persistent
compilation cache keeps each compiled program on disk, keyed by the program, the compile options, the
XLA flags, the devices and the JAX/XLA versions, so a hit is the same executable a compile would give
(a changed program, flag or version is a miss, never a stale program). MaxText turns it on the same way
(its `jax_cache_dir` setting, `~/jax_cache` by default).

Where it lives, through JAX's own environment variables (set before the process imports JAX):
- unset `JAX_COMPILATION_CACHE_DIR`: `$XDG_CACHE_HOME/flan_ul2r/xla` (`~/.cache/flan_ul2r/xla`);
- `JAX_COMPILATION_CACHE_DIR=/path` (or `gs://bucket/xla`, one cache for a pod's hosts): that folder;
- `JAX_COMPILATION_CACHE_DIR=` (set, empty): no cache.
Programs that compile in under `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` (JAX's default, 1 s) are not
stored: reading one back would cost about what compiling it does. The folder is not capped (as in
MaxText): delete it at any time, or set `JAX_COMPILATION_CACHE_MAX_SIZE` (bytes; JAX then evicts the
least recently used entries, under a lock file that needs the `filelock` package).
"""
from __future__ import annotations

import os

CACHE_DIR_VARIABLE = "JAX_COMPILATION_CACHE_DIR"


def default_directory() -> str:
    """`$XDG_CACHE_HOME/flan_ul2r/xla`, `~/.cache/flan_ul2r/xla` without XDG_CACHE_HOME."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flan_ul2r", "xla")


def enable_by_default() -> str | None:
    """Points JAX at the cache folder unless the user chose one (module docstring); returns the folder, or
    None when the cache is off. JAX reads these variables when it is imported: call this first
    (`flan_ul2r.cli.prepare_process` does); child processes inherit the choice."""
    os.environ.setdefault(CACHE_DIR_VARIABLE, default_directory())
    return os.environ[CACHE_DIR_VARIABLE] or None
