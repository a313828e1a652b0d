"""`flan-ul2r lm-eval ...`: EleutherAI lm-evaluation-harness's own CLI, with our `flan-ul2r` model registered.

lm-eval (0.4.x) finds models only in its own registry (`lm_eval.models.MODEL_MAPPING`, filled when
`lm_eval.models` is imported); it has no plugin entry point for models from other packages, so plain
`lm_eval --model flan-ul2r` cannot see ours. This verb imports lm-eval's models, registers ours
(flan_ul2r.evaluation.lm_eval_backend) and hands every argument to lm-eval's CLI unchanged:

    flan-ul2r lm-eval --model flan-ul2r --model_args checkpoint=DIR --tasks hellaswag --batch_size 8
    python -m flan_ul2r.main.lm_eval_cli --model flan-ul2r ...        # the same
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: flan-ul2r lm-eval --model flan-ul2r --model_args checkpoint=DIR --tasks TASKS
                         [lm-eval options]

EleutherAI lm-evaluation-harness's own CLI with our `flan-ul2r` model registered (lm-eval has no plugin
entry point for models from other packages). Every argument goes to lm-eval unchanged; model_args:
checkpoint (ours or an HF directory), batch_size, prefix_lm, max_gen_toks, seed.

example:
  flan-ul2r lm-eval --model flan-ul2r --model_args checkpoint=/runs/flan/checkpoints/2000 --tasks hellaswag

lm-eval's own options follow.
"""


def main(argv: Sequence[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
    try:
        import lm_eval.models  # noqa: F401 - lm-eval's own models stay available next to ours
        from lm_eval.__main__ import cli_evaluate
    except ImportError:
        print("flan-ul2r lm-eval: lm-eval is not installed (pip install 'flan-ul2r[lm-eval]')",
              file=sys.stderr)
        return 2
    import flan_ul2r.evaluation.lm_eval_backend  # noqa: F401 - registers --model flan-ul2r

    saved = sys.argv
    sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
