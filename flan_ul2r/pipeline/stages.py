"""Pipeline stages and their bookkeeping: each stage works in MODEL_DIR/<stage>/ and, when it is complete,
writes MODEL_DIR/<stage>/stage.json (what it produced and what it cost). A re-run skips stages that have
that file; an interrupted training stage resumes from its own latest checkpoint (training/run.py)."""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

from etils import epath

from flan_ul2r import fs
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.pipeline.ledger import StageCost, stage_cost
from flan_ul2r.training import checkpoints
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.metrics import read_metrics

MARKER = "stage.json"


class StageInterrupted(RuntimeError):
    """A training stage stopped before TRAIN_STEPS (preempted, or `stop_after_steps`); re-run to resume."""


def stage_dir(model_dir: str | epath.Path, stage: str) -> epath.Path:
    return fs.path(model_dir) / stage


def finished(model_dir: str | epath.Path, stage: str) -> dict[str, Any] | None:
    """The stage's record if it completed, else None."""
    marker = stage_dir(model_dir, stage) / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def mark_finished(model_dir: str | epath.Path, stage: str, record: dict[str, Any]) -> dict[str, Any]:
    """Writes the record at once (fs.write_text: temp file + rename, or one upload), so a kill never leaves
    half a marker."""
    fs.write_text(stage_dir(model_dir, stage) / MARKER, json.dumps({"stage": stage, **record}, indent=1))
    return {"stage": stage, **record}


def train_stage(model_dir: str | epath.Path, stage: str, cfg: RunConfig, initial_checkpoint: str | None,
                operative_config: str | None = None) -> dict[str, Any]:
    """Runs (or resumes, or skips) one training stage; returns its record: checkpoint + cost."""
    done = finished(model_dir, stage)
    if done is not None:
        print(f"pipeline: stage {stage!r} is done ({done['checkpoint']}); skipping", file=sys.stderr)
        return done
    from flan_ul2r.training.run import run

    folder = stage_dir(model_dir, stage)
    cfg = dataclasses.replace(cfg, model_dir=str(folder), initial_checkpoint_path=initial_checkpoint)
    t0 = time.perf_counter()
    if _latest_step(folder) != cfg.train_steps:  # else: trained to the end, killed before the marker
        print(f"pipeline: stage {stage!r} -> {folder}", file=sys.stderr)
        run(cfg, operative_config=operative_config)
    reached = _latest_step(folder)
    if reached != cfg.train_steps:
        raise StageInterrupted(f"stage {stage!r} stopped at step {reached} of {cfg.train_steps} "
                               f"({folder / 'checkpoints'}); run the pipeline again to resume it")
    model_cfg = ModelConfig.from_dict(json.loads((folder / "model_config.json").read_text()))
    cost = _cost(stage, cfg, model_cfg, folder, time.perf_counter() - t0)
    return mark_finished(model_dir, stage, {"checkpoint": str(folder / "checkpoints" / str(cfg.train_steps)),
                                            "cost": cost.to_dict()})


def _latest_step(folder: epath.Path) -> int | None:
    ckpt = folder / "checkpoints"
    steps = [int(p.name) for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.is_dir() else []
    return max(steps) if steps else None


def _cost(stage: str, cfg: RunConfig, model_cfg: ModelConfig, folder: epath.Path, wall: float) -> StageCost:
    """The stage's cost; step times come from metrics.jsonl, one (the latest) per step."""
    rows = read_metrics(folder / "metrics.jsonl") if (folder / "metrics.jsonl").is_file() else []
    per_step = {r["step"]: r.get("step_seconds", 0.0) for r in rows}
    return stage_cost(stage, model_cfg, cfg.train_steps, cfg.batch_size, cfg.sequence_length,
                      sum(per_step.values()), wall)


def import_stage(model_dir: str | epath.Path, hf_dir: str, dtype: str = "float32") -> dict[str, Any]:
    """The base stage for a user's model: `convert import-hf` into MODEL_DIR/base."""
    done = finished(model_dir, "base")
    if done is not None:
        return done
    from flan_ul2r.convert.hf_import import import_hf

    folder = stage_dir(model_dir, "base")
    print(f"pipeline: importing {hf_dir} -> {folder}", file=sys.stderr)
    import_hf(hf_dir, folder, dtype)
    model_config = checkpoints.read_json_beside(folder, "model_config")
    return mark_finished(model_dir, "base", {"checkpoint": str(folder), "imported_from": hf_dir,
                                             "model_config": model_config})
