"""`flan-ul2r <verb> ...`: one entry point, one module per verb.

Each verb lives in its own module under flan_ul2r/main/ and exposes `main(argv: list[str]) -> int`;
this file only dispatches, after hiding the accelerators from TensorFlow (flan_ul2r/tf_devices.py: every
verb passes here before any tf.data work). `flan-ul2r <verb> --help` prints the verb's usage.
gin parsing lives in flan_ul2r/gin_utils.py, which imports no verb.
"""
from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Sequence

# verb -> (module, one-line help). Modules import lazily so `flan-ul2r --help` is instant.
VERBS: dict[str, tuple[str, str]] = {
    "inspect": ("flan_ul2r.main.inspect", "print examples of a task/mixture, or a vocabulary's special ids"),
    "train": ("flan_ul2r.main.train", "train with gin configs (t5x-style macros and --gin.X=... overrides)"),
    "convert": ("flan_ul2r.main.convert", "import-hf / export-hf between HF safetensors and our checkpoints"),
    "eval": ("flan_ul2r.main.eval", "evaluate a checkpoint on an eval suite (held-out tasks, MMLU, BBH...)"),
    "lm-eval": ("flan_ul2r.main.lm_eval_cli", "run EleutherAI lm-evaluation-harness with --model flan-ul2r"),
    "infer": ("flan_ul2r.main.infer", "complete or infill prompts from a file or stdin; JSON lines out"),
    "pipeline": ("flan_ul2r.main.pipeline", "base -> UL2R -> Flan -> eval of all four -> report + compute"),
}


def prepare_process() -> None:
    """What every verb's process does first: turn on the persistent cache of compiled XLA programs
    (flan_ul2r/compile_cache.py: before JAX loads), quiet TF's C++ logs, load TF
    (tf_devices.import_tensorflow) with the accelerators hidden from it, and set libtpu's environment."""
    from flan_ul2r import compile_cache

    compile_cache.enable_by_default()
    # TensorFlow's C++ INFO/WARNING lines (set before TF loads; export TF_CPP_MIN_LOG_LEVEL=0 to see
    # them): a failing tf.data op logs one warning, with the Python traceback, per parallel call,
    # while the verb already prints the error once, naming the file and line
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from flan_ul2r.tf_devices import hide_accelerators_from_tensorflow, quiet_libtpu

    hide_accelerators_from_tensorflow()
    quiet_libtpu()  # libtpu installed (tpu-compile extra) on a machine without TPUs: no init warnings


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
    if not any(a in ("-h", "--help") for a in rest):
        prepare_process()
    module = importlib.import_module(VERBS[verb][0])
    # What is imported by now (TF, JAX, seqio: millions of objects) lives as long as the process; frozen,
    # it is out of the collector's sight and the full collections of a run stop walking it (a 12-step toy
    # training process: 10 full collections, 1.55 -> 0.9 s of CPU). Once per process: a later freeze
    # would also keep whatever garbage the earlier verbs left in reference cycles.
    if gc.get_freeze_count() == 0:
        gc.freeze()
    code = 1  # until the verb returns
    try:
        code = int(module.main(rest) or 0)
        return code
    except Exception as e:  # a data error raised inside TF's tracing arrives wrapped: show the original
        from flan_ul2r.errors import exit_code, message, user_error

        shown = user_error(e)
        if shown is None:
            raise
        print(f"flan-ul2r {verb}: {message(shown)}", file=sys.stderr)
        return exit_code(e)
    finally:
        # an error's traceback keeps the frames of a failed tf.data pipeline in reference cycles: freed
        # only by the collector at interpreter exit, its iterator waits there for worker threads that can
        # no longer take the GIL, and the process hangs after printing its message. Free them now. Only
        # after a failure: a full collection walks every object TF and JAX made (0.8 s in a test process).
        if code != 0:
            gc.collect()


if __name__ == "__main__":
    sys.exit(main())
