"""`flan-ul2r eval`: evaluate a checkpoint on an eval suite (t5x's eval.py, on our runner).

    flan-ul2r eval --gin_file=gin/runs/eval.gin --gin.CHECKPOINT_PATH=/runs/flan/checkpoints/2000 \\
        --gin.EVAL_SUITE=heldout

CHECKPOINT_PATH: one of our checkpoints (MODEL_DIR/checkpoints/<step>, or a params-only directory written by
`convert import-hf`) or an HF safetensors directory (imported on the fly). EVAL_SUITE: a suite or task
registered in flan_ul2r.tasks.evals (`heldout` needs no files; `flan_paper`, `mmlu`, `bbh`, `gsm8k`, `mgsm`,
`tydiqa` read MMLU_DIR, BBH_DIR, GSM8K_DIR, MGSM_DIR, TYDIQA_DIR). Output (EVAL_OUTPUT_DIR; default below):
results.json, results.md and predictions/<task>.jsonl.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import gin

from flan_ul2r import fs
from flan_ul2r.evaluation.prompt_plan import TOO_LONG
from flan_ul2r.evaluation.runner import EvalSettings

USAGE = """usage: flan-ul2r eval --gin_file=gin/runs/eval.gin --gin.CHECKPOINT_PATH=DIR
                     [--gin.EVAL_SUITE=heldout] [--gin.EVAL_OUTPUT_DIR=DIR] [--gin.MMLU_DIR=DIR ...]
                     [--gin.X=VALUE ...]

Evaluates a checkpoint (ours or an HF safetensors directory) on an eval suite and writes results.json,
results.md (a table per benchmark, the Flan normalized average when defined) and predictions/<task>.jsonl.

suites: heldout (default; embedded, no files; heldout_zs, heldout_fs, heldout_cot, heldout_rank for one
        style), flan_paper, mmlu, mmlu_direct, mmlu_cot, bbh, bbh_direct, bbh_cot, gsm8k, mgsm, tydiqa, or a
        single task name (e.g. bbh_cot.navigate)
settings (gin macros in gin/runs/eval.gin):
  MAX_EXAMPLES     examples per task (None = all)
  BATCH_SIZE       rows decoded together
  NUM_SAMPLES, TEMPERATURE   self-consistency on CoT tasks (1 = greedy)
  TOO_LONG         a prompt longer than the model: 'error' (default: stop before decoding, naming every
                   task), 'skip' (leave it out, listed in results.json), 'truncate_left' (drop the oldest
                   exemplars, then the left of the prompt)
  MAX_NEW_TOKENS   new-token budget for every generated answer (None = each benchmark's, scaled for byte
                   vocabularies)
  DTYPE            'float32' or 'bfloat16' (weights and compute; half the memory traffic)
  MMLU_SPLIT       'val' (default: the Flan paper reports the validation split), 'test' or 'dev'
  MMLU_DIR, BBH_DIR, GSM8K_DIR, MGSM_DIR, TYDIQA_DIR   the original releases or Hugging Face copies
                   (parquet or datasets.save_to_disk folders)
default output: MODEL_DIR/eval/<step>/<suite> for MODEL_DIR/checkpoints/<step>, else ./eval/<name>/<suite>;
        a re-run of the same command reuses the tasks already finished there (same checkpoint and settings)

examples:
  flan-ul2r eval --gin_file=gin/runs/eval.gin --gin.CHECKPOINT_PATH=/tmp/flan_smoke/checkpoints/50 \\
      --gin.EVAL_SUITE=heldout --gin.MAX_EXAMPLES=20 --gin.TOO_LONG="'truncate_left'"
  flan-ul2r eval --gin_file=gin/runs/eval.gin --gin.CHECKPOINT_PATH=/models/Llama-3.2-1B \\
      --gin.EVAL_SUITE=mmlu --gin.MMLU_DIR=/data/mmlu --gin.MMLU_SPLIT="'test'"
"""


def default_output_dir(checkpoint_path: str, suite: str) -> Any:
    """MODEL_DIR/eval/<step>/<suite> for a training checkpoint (local or remote), else
    ./eval/<directory name>/<suite>."""
    p = fs.absolute(checkpoint_path)
    if re.fullmatch(r"\d+", p.name) and p.parent.name == "checkpoints":
        return p.parent.parent / "eval" / p.name / suite
    return fs.path(os.getcwd()) / "eval" / p.name / suite


@gin.configurable
def evaluate_checkpoint(checkpoint_path: str = gin.REQUIRED, suite: str = "heldout",
                        output_dir: str | None = None, max_examples: int | None = None, batch_size: int = 8,
                        num_samples: int = 1, temperature: float = 0.7, seed: int = 0,
                        append_eos: bool | None = None, progress: bool = True, too_long: str = "error",
                        max_new_tokens: int | None = None, dtype: str = "float32") -> dict[str, Any]:
    """Loads the checkpoint (`dtype`: float32 or bfloat16), runs the suite's tasks and writes the results,
    reusing tasks finished by an earlier run into the same directory; returns results.json's dict."""
    import flan_ul2r
    from flan_ul2r.evaluation.evaluate import check_model, evaluate
    from flan_ul2r.evaluation.seqio_tasks import eval_task, suite_tasks

    names = suite_tasks(suite)  # an unknown suite fails before the model is loaded
    path = fs.path(checkpoint_path)
    if not path.exists():
        raise FileNotFoundError(f"CHECKPOINT_PATH={checkpoint_path}: no such directory")
    settings = EvalSettings(max_examples=max_examples, batch_size=batch_size, num_samples=num_samples,
                            temperature=temperature, seed=seed, append_eos=append_eos, progress=progress,
                            too_long=too_long, max_new_tokens=max_new_tokens)
    if too_long not in TOO_LONG:
        raise ValueError(f"TOO_LONG={too_long!r}: use one of {TOO_LONG}")
    model = flan_ul2r.load_model(str(path), dtype=dtype)
    check_model(model, f"CHECKPOINT_PATH={checkpoint_path}")
    out = fs.path(output_dir) if output_dir else default_output_dir(checkpoint_path, suite)
    summary, _ = evaluate(model, [eval_task(n) for n in names], settings, out_dir=out,
                          model_path=str(path), suite=suite)
    print(f"wrote {out}/results.json, results.md and predictions/", file=sys.stderr)
    return summary


def main(argv: Sequence[str]) -> int:
    from flan_ul2r.gin_utils import start_verb

    status = start_verb("eval", argv, USAGE)
    if status is not None:
        return status
    try:
        summary = evaluate_checkpoint()
    except (ValueError, FileNotFoundError) as e:
        from flan_ul2r.errors import exit_code, message

        print(f"flan-ul2r eval: {message(e)}", file=sys.stderr)
        return exit_code(e)
    norm = summary.get("normalized_average") or {}
    print(json.dumps({"suite": summary["suite"], "num_examples": summary["num_examples"],
                      "benchmarks": {k: None if math.isnan(v["score"]) else round(v["score"], 2)
                                     for k, v in summary["benchmarks"].items()},
                      "normalized_average": norm.get("value")}))
    return 0
