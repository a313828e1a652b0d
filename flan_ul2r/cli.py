"""`flan-ul2r <verb> ...`: one entry point, one module per verb.

Each verb lives in its own module and exposes `main(argv: list[str]) -> int`; this file only
dispatches, and owns gin parsing (`parse_gin`) so that gin stays at the edges of the program.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# verb -> (module, one-line help). Modules import lazily so `flan-ul2r --help` is instant.
VERBS: dict[str, tuple[str, str]] = {
    "inspect": ("flan_ul2r.inspect_cmd", "print examples of a task/mixture, or a vocabulary's special ids"),
    "train": ("flan_ul2r.train_cmd", "train with gin configs (t5x-style macros and --gin.X=... overrides)"),
    "convert": ("flan_ul2r.convert.cli", "import-hf / export-hf between HF safetensors and our checkpoints"),
}

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

    for path in gin_search_paths():
        gin.add_config_file_search_path(path)
    for f in gin_files:
        if not any(Path(p, f).is_file() for p in gin_search_paths()) and not Path(f).is_file():
            raise SystemExit(f"--gin_file={f}: no such file (searched {', '.join(gin_search_paths())})")
    gin.parse_config_files_and_bindings(list(gin_files), [_quote_bare(b) for b in bindings],
                                        finalize_config=finalize)


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: flan-ul2r <verb> [options]\n\nverbs:")
        for name, (_, doc) in VERBS.items():
            print(f"  {name:<10} {doc}")
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"flan-ul2r: unknown verb {verb!r}; known: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(VERBS[verb][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
