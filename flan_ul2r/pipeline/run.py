"""One command from a base model to a Flan-U model: base (pretrain or import) -> UL2R -> Flan on the base
and on the U model -> evaluation of all four -> report (the Flan paper's Table 5 in miniature: base,
+UL2R, +Flan, +both). Each stage works in MODEL_DIR/<stage>; a re-run skips finished stages and resumes
an interrupted one; a finished pipeline re-run only rewrites the report."""
from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from etils import epath

from flan_ul2r import fs
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.pipeline import ledger as ledger_lib
from flan_ul2r.pipeline.config import EvalStageConfig, PipelineConfig
from flan_ul2r.pipeline.report import MODELS, write_report
from flan_ul2r.pipeline.stages import finished, import_stage, mark_finished, stage_dir, train_stage

COMPUTE_GROUPS = {"UL2R": ["ul2r"], "Flan on the base": ["flan"], "Flan on the U model": ["flan_ul2r"],
                  "UL2R + Flan (the Flan-U model)": ["ul2r", "flan_ul2r"]}


def run_pipeline(cfg: PipelineConfig, operative_config: str | None = None) -> dict[str, Any]:
    """Runs every stage that is not finished and returns report.json's content."""
    root = fs.path(cfg.model_dir)
    root.mkdir(parents=True, exist_ok=True)
    _EXAMPLES.clear()
    if operative_config is not None:
        fs.write_text(root / "config.gin", operative_config)
    if cfg.pretrain is not None:
        base = train_stage(root, "base", cfg.pretrain, None, operative_config)
    else:
        base = import_stage(root, cfg.import_hf_dir, cfg.import_dtype)
    ul2r = train_stage(root, "ul2r", cfg.ul2r, base["checkpoint"], operative_config)
    flan = train_stage(root, "flan", cfg.flan, base["checkpoint"], operative_config)
    flan_ul2r = train_stage(root, "flan_ul2r", cfg.flan, ul2r["checkpoint"], operative_config)
    stages = [base, ul2r, flan, flan_ul2r]
    results = {m: eval_stage(root, m, s["checkpoint"], cfg.eval) for m, s in zip(MODELS, stages)}
    if cfg.export_hf:
        stages.append(export_stage(root, flan_ul2r["checkpoint"]))
    book = compute_ledger(cfg, stages)
    dirs = {s["stage"]: stage_dir(root, s["stage"]) for s in stages}
    return write_report(root, results, book, stages, dirs, cfg.title)


def eval_stage(root: epath.Path, model: str, checkpoint: str, cfg: EvalStageConfig) -> dict[str, Any]:
    """Evaluates one model on every suite (MODEL_DIR/eval/<model>/<suite>/results.json, results.md,
    predictions/), the infilling and copying checks and the held-out LM loss, and writes their union as
    MODEL_DIR/eval/<model>/results.json; each task names its predictions file (`predictions`), which the
    report's paired comparisons read."""
    name = f"eval/{model}"
    done = finished(root, name)
    out = stage_dir(root, name)
    if done is not None:
        print(f"pipeline: stage {name!r} is done; skipping", file=sys.stderr)
        return json.loads((out / "results.json").read_text())
    import flan_ul2r
    from flan_ul2r.evaluation.evaluate import check_model

    print(f"pipeline: evaluating {model} ({checkpoint})", file=sys.stderr)
    lm = flan_ul2r.load_model(checkpoint)
    check_model(lm, checkpoint)
    merged: dict[str, Any] = {"model_path": checkpoint, "benchmarks": {}, "tasks": {}, "suites": {}}
    for part in (_suite_results(lm, checkpoint, cfg, out), _heldout_text_results(lm, cfg, out)):
        for key in ("benchmarks", "tasks", "suites"):
            merged[key].update(part.get(key, {}))
        if part.get("normalized_average") is not None:
            merged["normalized_average"] = part["normalized_average"]
    fs.write_text(out / "results.json", json.dumps(merged, indent=1) + "\n")
    mark_finished(root, name, {"checkpoint": checkpoint, "results": str(out / "results.json")})
    return merged


def _suite_results(lm: Any, checkpoint: str, cfg: EvalStageConfig, out: epath.Path) -> dict[str, Any]:
    from flan_ul2r.evaluation.evaluate import evaluate
    from flan_ul2r.evaluation.runner import EvalSettings
    from flan_ul2r.evaluation.seqio_tasks import eval_task, suite_tasks

    settings = EvalSettings(max_examples=cfg.max_examples, batch_size=cfg.batch_size,
                            num_samples=cfg.num_samples, temperature=cfg.temperature, too_long=cfg.too_long)
    merged: dict[str, Any] = {"benchmarks": {}, "tasks": {}, "suites": {}}
    for suite in cfg.suites:
        tasks = [_read_once(eval_task(n)) for n in suite_tasks(suite)]
        summary, _ = evaluate(lm, tasks, settings, out_dir=out / suite, model_path=checkpoint, suite=suite)
        merged["benchmarks"].update(summary["benchmarks"])
        merged["tasks"].update({t: {**s, "predictions": str(out / suite / "predictions" / f"{t}.jsonl")}
                                for t, s in summary["tasks"].items()})
        merged["suites"][suite] = str(out / suite / "results.json")
        if summary.get("normalized_average") is not None:
            merged["normalized_average"] = summary["normalized_average"]
    return merged


_EXAMPLES: dict[str, list[Any]] = {}  # eval task -> its examples, read once per pipeline run


def _read_once(task: Any) -> Any:
    """The task with its examples read through seqio once for all four models (run_pipeline clears)."""
    def load() -> list[Any]:
        if task.name not in _EXAMPLES:
            _EXAMPLES[task.name] = list(task.load())
        return _EXAMPLES[task.name]

    return dataclasses.replace(task, load=load)


def _heldout_text_results(lm: Any, cfg: EvalStageConfig, out: epath.Path) -> dict[str, Any]:
    """The infilling check, the causal LM loss and the copying check, all on the default corpus's held-out
    documents."""
    from flan_ul2r.evaluation.copying import evaluate_copying
    from flan_ul2r.evaluation.infilling import evaluate_infilling, heldout_documents, make_examples
    from flan_ul2r.evaluation.lm_loss import evaluate_lm_loss

    merged: dict[str, Any] = {"benchmarks": {}, "tasks": {}}
    parts = []
    documents = heldout_documents() if cfg.infilling_examples or cfg.lm_loss or cfg.copying else []
    if cfg.infilling_examples:
        examples = make_examples(documents, cfg.infilling_examples,
                                 windows_per_document=cfg.infilling_windows)
        parts.append(("infilling", evaluate_infilling(lm, examples, out_dir=out / "infilling",
                                                      batch_size=cfg.batch_size, too_long=cfg.too_long)))
    if cfg.lm_loss:
        parts.append(("lm_loss", evaluate_lm_loss(lm, documents, out_dir=out / "lm_loss",
                                                  batch_size=cfg.batch_size)))
    if cfg.copying:
        parts.append(("copying", evaluate_copying(lm, documents, out_dir=out / "copying",
                                                  batch_size=cfg.batch_size)))
    for task, part in parts:
        merged["benchmarks"].update(part["benchmarks"])
        for name, summary in part["tasks"].items():
            predictions = out / task / "predictions" / f"{summary.get('file', name)}.jsonl"
            merged["tasks"][name] = {**summary, "predictions": str(predictions)}
    return merged


def export_stage(root: epath.Path, checkpoint: str) -> dict[str, Any]:
    done = finished(root, "export-hf")
    if done is not None:
        return done
    from flan_ul2r.convert.hf_export import export_hf

    out = stage_dir(root, "export-hf")
    notes = export_hf(checkpoint, out, overwrite=True)  # the stage's own folder (a kill may leave it)
    return mark_finished(root, "export-hf", {"checkpoint": str(out), "from": checkpoint, "notes": notes})


def compute_ledger(cfg: PipelineConfig, stages: list[dict[str, Any]]) -> dict[str, Any]:
    """Each training stage's cost (recorded in its stage.json) and the shares of the base's compute."""
    costs = [ledger_lib.StageCost(**{k: v for k, v in s["cost"].items() if k not in ("tokens", "flops")})
             for s in stages if "cost" in s]
    if cfg.pretrain is not None:
        base_flops, source = costs[0].flops, "measured: the base stage of this pipeline"
    else:
        model_cfg = ModelConfig.from_dict(stages[0]["model_config"])
        stated = ledger_lib.imported_base_cost(model_cfg, cfg.base_pretraining_tokens,
                                               cfg.ul2r.sequence_length)
        base_flops = stated["flops"]
        source = (f"stated: {cfg.base_pretraining_tokens:.3g} pretraining tokens x "
                  f"{stated['flops_per_token']:.3g} FLOPs per token")
    return ledger_lib.ledger(costs, base_flops, source, COMPUTE_GROUPS)
