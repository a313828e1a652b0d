"""`flan-ul2r pipeline`: base model -> UL2R -> Flan (on base and on U) -> evaluation -> report.

    flan-ul2r pipeline --gin_file=gin/pipelines/smoke.gin --gin.MODEL_DIR=/tmp/pipeline

The gin edge of flan_ul2r/pipeline/: stage RunConfigs are bound under gin scopes (`base/`, `ul2r/`,
`flan/`), the evaluation under `EvalStageConfig`. A re-run skips finished stages and resumes an
interrupted one; a finished pipeline re-run only rewrites the report and exits 0.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import gin

import flan_ul2r.main.train  # noqa: F401  (binds RunConfig, ModelSpec, ModelConfig, MeshConfig, ...)
from flan_ul2r.pipeline.config import EvalStageConfig, PipelineConfig
from flan_ul2r.training.config import RunConfig

gin.external_configurable(EvalStageConfig, module="flan_ul2r")

USAGE = """usage: flan-ul2r pipeline --gin_file=gin/pipelines/<name>.gin [--gin.MODEL_DIR=DIR]
                          [--gin.X=VALUE ...]

Runs base (pretraining, or import of an HF directory) -> UL2R -> Flan on the base and on the U model ->
evaluation of the four models -> MODEL_DIR/report.md, report.json, loss_curves.png, results.png.
Each stage writes MODEL_DIR/<stage>/; re-running resumes where it stopped.

pipelines: gin/pipelines/smoke.gin (embedded default: no download, about 9 minutes on 2 CPU cores),
           gin/pipelines/demo.gin (the same four models, larger and longer: about 45 minutes on 2 CPU
           cores, minutes on one GPU),
           gin/pipelines/llama3_8b.gin, gin/pipelines/gemma_2b.gin (your HF directory; real scale)
required:  MODEL_DIR (smoke.gin defaults it)

example:
  flan-ul2r pipeline --gin_file=gin/pipelines/smoke.gin --gin.MODEL_DIR=/tmp/flan_ul2r_pipeline
"""


@gin.configurable
def pipeline(model_dir: str = gin.REQUIRED, ul2r: RunConfig = gin.REQUIRED, flan: RunConfig = gin.REQUIRED,
             pretrain: RunConfig | None = None, import_hf_dir: str | None = None,
             import_dtype: str = "float32", base_pretraining_tokens: float | None = None,
             eval_config: EvalStageConfig | None = None, export_hf: bool = False) -> dict[str, Any]:
    """The gin-bound PipelineConfig (fields documented there), run by flan_ul2r.pipeline.run."""
    from flan_ul2r.pipeline.run import run_pipeline

    cfg = PipelineConfig(model_dir=model_dir, ul2r=ul2r, flan=flan, pretrain=pretrain,
                         import_hf_dir=import_hf_dir, import_dtype=import_dtype,
                         base_pretraining_tokens=base_pretraining_tokens,
                         eval=eval_config or EvalStageConfig(), export_hf=export_hf)
    return run_pipeline(cfg, operative_config=gin.operative_config_str())


def main(argv: Sequence[str]) -> int:
    from flan_ul2r.gin_utils import start_verb
    from flan_ul2r.pipeline.stages import StageInterrupted

    status = start_verb("pipeline", argv, USAGE)
    if status is not None:
        return status
    try:
        report = pipeline()
    except StageInterrupted as e:
        print(f"flan-ul2r pipeline: {e}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"flan-ul2r pipeline: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"report": report["title"], "ledger": report["ledger"]["percent_of_base_pretraining"]}))
    return 0
