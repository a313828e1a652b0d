"""gin at the edge: `--gin_file` / `--gin.X=` parsing and search paths (t5x's gin_utils).

Every entry point (flan_ul2r/main/*.py) calls `parse_gin`; this module imports no entry point.
"""
from __future__ import annotations

import logging
import os
import tokenize
from collections.abc import Sequence
from pathlib import Path

GIN_DIR = Path(__file__).resolve().parent.parent / "gin"


def gin_search_paths() -> list[str]:
    """Where `--gin_file` and `include` look: the working directory, then the project's gin/ folder."""
    paths = [os.getcwd(), str(GIN_DIR.parent), str(GIN_DIR)]
    extra = os.environ.get("FLAN_UL2R_GIN_PATH", "")
    return [p for p in extra.split(os.pathsep) if p] + paths


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str], finalize: bool = True) -> None:
    """Parses gin files and `X=value` bindings; errors carry the file and line gin reports.

    Binding values that are bare words (not numbers, lists, dicts, references or quoted strings) are
    quoted for the user: `--gin.MODEL_DIR=/tmp/run` works as well as t5x's `--gin.MODEL_DIR=\\"/tmp/run\\"`.
    """
    import gin
    from flan_ul2r import fs

    gin.config.register_file_reader(_open_remote, _is_remote_file)  # gin files on gs://... (idempotent)
    for path in gin_search_paths():
        gin.add_config_file_search_path(path)
    for f in gin_files:
        if fs.is_remote(f):
            if not fs.path(f).is_file():
                raise SystemExit(f"--gin_file={f}: no such file")
        elif not any(Path(p, f).is_file() for p in gin_search_paths()) and not Path(f).is_file():
            raise SystemExit(f"--gin_file={f}: no such file (searched {', '.join(gin_search_paths())})")
    quiet = _QuietSearchMisses()
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(list(gin_files), [_quote_bare(b) for b in bindings],
                                            finalize_config=finalize)
    except SyntaxError as e:  # gin's parser: name the file and line without a traceback
        where = f"{e.filename}:{e.lineno}" if e.filename else f"--gin binding, line {e.lineno}"
        raise ValueError(f"{where}: gin syntax error: {e.msg} (at {(e.text or '').strip()!r})") from None
    except tokenize.TokenError as e:  # an unclosed bracket or string in a --gin.NAME=VALUE binding
        raise ValueError(f"gin syntax error: {e.args[0]} in the bindings {list(bindings)}") from None
    finally:
        logging.getLogger().removeFilter(quiet)


def _open_remote(path: str):
    from flan_ul2r import fs

    return fs.path(path).open("r")


def _is_remote_file(path: str) -> bool:
    from flan_ul2r import fs

    return fs.is_remote(path) and fs.path(path).is_file()


class _QuietSearchMisses(logging.Filter):
    """gin logs an ERROR for every search path an `include` is not under; only the final miss matters
    (gin raises it), so the per-path messages are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Path not found")


def _quote_bare(binding: str) -> str:
    name, sep, value = binding.partition("=")
    if not sep:
        raise SystemExit(f"--gin.{binding}: expected --gin.NAME=VALUE")
    v = value.strip()
    literal_starts = ('"', "'", "[", "(", "{", "@", "%", "-", "+", ".")
    if not v or v[0].isdigit() or v.startswith(literal_starts) or v in ("True", "False", "None"):
        return binding
    return f"{name}={v!r}"


def split_gin_args(argv: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Pulls `--gin_file=F` / `--gin_file F` and `--gin.X=V` out of argv; returns (files, bindings, rest)."""
    files, bindings, rest = [], [], []
    it = iter(argv)
    for a in it:
        if a == "--gin_file":
            files.append(next(it, ""))
        elif a.startswith("--gin_file="):
            files.append(a.split("=", 1)[1])
        elif a.startswith("--gin."):
            bindings.append(a[len("--gin."):])
        elif a == "--gin_bindings":
            bindings.append(next(it, ""))
        else:
            rest.append(a)
    return files, bindings, rest
