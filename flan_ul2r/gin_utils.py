"""gin at the edge: `--gin_file` / `--gin.X=` parsing and search paths (t5x's gin_utils), user modules.

Every entry point (flan_ul2r/main/*.py) calls `parse_gin`, then `import_task_modules()` (the modules
named by the `MIXTURE_OR_TASK_MODULE` macro, t5x's name, which register the user's seqio tasks); this
module imports no entry point. The working directory is on the import path for both, as with `python -m`.
"""
from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
import tokenize
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The gin files ship inside the package (package data), so an installed `flan-ul2r` finds them from any
# directory: `--gin_file=runs/ul2r.gin` (under GIN_DIR) or `--gin_file=gin/runs/ul2r.gin` (under its parent).
GIN_DIR = Path(__file__).resolve().parent / "gin"
# Macros that code reads after parsing (`gin_macro`), not gin bindings.
CODE_MACROS = frozenset({"MIXTURE_OR_TASK_MODULE"})


def gin_search_paths() -> list[str]:
    """Where `--gin_file` and `include` look: $FLAN_UL2R_GIN_PATH, the working directory, then the gin/
    folder installed with the package."""
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
    from flan_ul2r.errors import ConfigError

    _cwd_importable()
    gin.config.register_file_reader(_open_remote, _is_remote_file)  # gin files on gs://... (idempotent)
    for path in gin_search_paths():
        gin.add_config_file_search_path(path)
    for f in gin_files:
        if fs.is_remote(f):
            if not fs.path(f).is_file():
                raise ConfigError(f"--gin_file={f}: no such file")
        elif not any(Path(p, f).is_file() for p in gin_search_paths()) and not Path(f).is_file():
            raise ConfigError(f"--gin_file={f}: no such file (searched {', '.join(gin_search_paths())})")
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
    check_hidden_bindings(bindings)


def check_hidden_bindings(bindings: Sequence[str]) -> None:
    """Refuses, with a ConfigError, two `--gin.` overrides that gin would silently drop:
    - a `MACRO=` that no gin file refers to (`LEARNING_RATE` on a pipeline, whose stages read
      `FLAN_LEARNING_RATE`): the message lists the macros in use;
    - an unscoped `Name.param=` that a gin file binds in a scope (a pipeline's
      `ul2r/OptimizerConfig.learning_rate`, smoke.gin's `smoke/ModelConfig.num_layers`): gin lets the
      scoped binding win, so the override would not reach that scope; the message names the scoped ones."""
    import gin

    from flan_ul2r.errors import ConfigError

    used = _macros_referred_to()
    for binding in bindings:
        name = binding.split("=", 1)[0].strip()
        if "." not in name and "/" not in name and name not in used and name not in CODE_MACROS:
            known = sorted(used | CODE_MACROS)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"--gin.{binding}: no gin file of this command refers to the macro {name} "
                              f"(%{name}), so it would change nothing; {hint}macros they use: "
                              f"{', '.join(known)}")
        if "/" in name or "." not in name:
            continue  # a scoped binding, or a macro
        selector, param = name.rsplit(".", 1)
        scoped = sorted(f"{scope}/{selector}.{param}" for (scope, full), values in gin.config._CONFIG.items()
                        if scope and param in values and (full == selector or full.endswith("." + selector)))
        if scoped:
            raise ConfigError(
                f"--gin.{binding}: the gin files bind {param} per scope ({', '.join(scoped)}), and a scoped "
                f"binding wins over an unscoped one, so this would not reach them: bind the scoped names "
                f"instead (e.g. --gin.{scoped[0]}={binding.split('=', 1)[1].strip()})")


def configure_verb(verb: str, gin_files: Sequence[str], bindings: Sequence[str]) -> int | None:
    """The common start of a gin-configured verb: the built-in registrations, the gin files and bindings,
    then the registrations that read gin (corpus, vocabulary, denoisers, Flan rates). Returns 2 after
    printing the error for bad gin (the file and line gin reports), else None."""
    import flan_ul2r.tasks

    flan_ul2r.tasks.import_all()
    try:
        parse_gin(gin_files, bindings)
    except (ValueError, KeyError, OSError) as e:
        print(f"flan-ul2r {verb}: gin error: {e}", file=sys.stderr)
        return 2
    flan_ul2r.tasks.register_after_gin()
    return None


def start_verb(verb: str, argv: Sequence[str], usage: str) -> int | None:
    """A gin-only verb's start: `usage` for --help (returns 0); only --gin_file/--gin.X arguments, at least
    one file (else returns 2, printed); then `configure_verb`. None: go on."""
    if any(a in ("-h", "--help", "help") for a in argv):
        print(usage)
        return 0
    files, bindings, rest = split_gin_args(argv)
    if rest or not files:
        problem = f"unexpected arguments {rest}" if rest else "give --gin_file"
        print(f"flan-ul2r {verb}: {problem}\n\n{usage}", file=sys.stderr)
        return 2
    return configure_verb(verb, files, bindings)


def _macros_referred_to() -> set[str]:
    """The macros some binding of the parsed config refers to (`%NAME`, in values, lists and dicts)."""
    import gin

    found: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, gin.config.ConfigurableReference):
            selector = value.scoped_selector
            if selector.endswith("/gin.macro"):
                found.add(selector.rsplit("/", 1)[0])
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, (list, tuple, set)):
            for v in value:
                visit(v)

    for values in gin.config._CONFIG.values():
        visit(values)
    return found


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
        from flan_ul2r.errors import ConfigError

        raise ConfigError(f"--gin.{binding}: expected --gin.NAME=VALUE")
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


def _cwd_importable() -> None:
    """Puts the working directory on sys.path (the console script's sys.path[0] is its bin directory)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def gin_macro(name: str) -> Any:
    """The value of gin macro `name` after parsing, or None when it is not bound."""
    import gin

    try:
        return gin.query_parameter(f"%{name}")
    except ValueError:
        return None


def import_task_modules(modules: str | Sequence[str] | None = None,
                        flag: str = "MIXTURE_OR_TASK_MODULE") -> list[str]:
    """Imports the user's task modules (default: the `MIXTURE_OR_TASK_MODULE` gin macro: a module name,
    a list of them, or None), so that their seqio registrations exist. Returns the names imported.

    An unknown module is a ValueError naming it; a module whose own imports fail keeps its error. Gin
    is unlocked while importing, so a module may define configurables (bind them in a gin file that
    `import`s the module, as t5x does).
    """
    import gin

    if modules is None:
        modules = gin_macro(flag)
    names = [modules] if isinstance(modules, str) else list(modules or [])
    _cwd_importable()
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{flag}={modules!r}: expected a module name or a list of them")
        try:
            with gin.unlock_config():
                importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                raise ValueError(f"{flag}={name!r}: no module named {e.name!r} (searched the working "
                                 f"directory {os.getcwd()} and sys.path)") from None
            raise
    return names
