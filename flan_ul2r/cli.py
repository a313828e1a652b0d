"""`flan-ul2r <verb> ...`: one entry point, one module per verb.

Each verb lives in its own module under flan_ul2r/main/ and exposes `main(argv: list[str]) -> int`;
this file only dispatches. gin parsing lives in flan_ul2r/gin_utils.py, which imports no verb.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# verb -> (module, one-line help). Modules import lazily so `flan-ul2r --help` is instant.
VERBS: dict[str, tuple[str, str]] = {
    "inspect": ("flan_ul2r.main.inspect", "print examples of a task/mixture, or a vocabulary's special ids"),
    "train": ("flan_ul2r.main.train", "train with gin configs (t5x-style macros and --gin.X=... overrides)"),
    "convert": ("flan_ul2r.main.convert", "import-hf / export-hf between HF safetensors and our checkpoints"),
}


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
    from flan_ul2r.training.tpu_topology import quiet_libtpu

    quiet_libtpu()  # libtpu installed (tpu_compile extra) on a machine without TPUs: no init warnings
    module = importlib.import_module(VERBS[verb][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
