"""The pipeline's report: the 2x2 table (base, +UL2R, +Flan, +UL2R+Flan) of every evaluated metric, the
compute ledger, loss curves per stage and a bar chart - MODEL_DIR/report.md, report.json, *.png.

Every number is read from the stages' own files (eval results.json, metrics.jsonl, stage.json); nothing
is computed for the report that the stages did not measure, except sums and shares of the ledger.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from etils.epath import Path

from flan_ul2r import fs
from flan_ul2r.training.metrics import read_metrics

MODELS = ("base", "ul2r", "flan", "flan_ul2r")  # the 2x2: neither, UL2R, Flan, both (Flan paper Table 5)
LABELS = {"base": "base", "ul2r": "+UL2R", "flan": "+Flan", "flan_ul2r": "+UL2R+Flan"}


def table(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows {"metric", "kind", <model>: value} from each model's eval results.json: every benchmark's score,
    the normalized average when defined, then every task's metrics."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for model, summary in results.items():
        for bench, b in summary.get("benchmarks", {}).items():
            rows.setdefault((bench, "benchmark"), {})[model] = b["score"]
        norm = (summary.get("normalized_average") or {}).get("value")
        if norm is not None:
            rows.setdefault(("normalized average", "normalized_average"), {})[model] = norm
        for task, t in summary.get("tasks", {}).items():
            for metric, value in t.get("metrics", {}).items():
                rows.setdefault((f"{task} {metric}", "task"), {})[model] = value
    order = {"normalized_average": 0, "benchmark": 1, "task": 2}
    return [{"metric": name, "kind": kind, **values}
            for (name, kind), values in sorted(rows.items(), key=lambda kv: (order[kv[0][1]], kv[0][0]))]


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.2f}"
    return "" if x is None else str(x)


def markdown(rows: Sequence[dict[str, Any]], ledger: dict[str, Any], stages: Sequence[dict[str, Any]],
             title: str) -> str:
    models = [m for m in MODELS if any(m in r for r in rows)]
    lines = [f"# {title}", "", "## Results (the 2x2: Chung et al. 2022, Table 5 compares the same four)", "",
             "| metric | " + " | ".join(LABELS[m] for m in models) + " |", "|---|" + "---:|" * len(models)]
    lines += [f"| {r['metric']} | " + " | ".join(_fmt(r.get(m)) for m in models) + " |" for r in rows]
    lines += ["", "## Compute ledger", "", "| stage | steps | tokens | TFLOPs | train s | wall s |",
              "|---|---:|---:|---:|---:|---:|"]
    for s in ledger["stages"]:
        lines.append(f"| {s['stage']} | {s['steps']} | {s['tokens']:,} | {s['flops'] / 1e12:,.2f} | "
                     f"{s['train_seconds']:.0f} | {s['wall_seconds']:.0f} |")
    lines += ["", f"Base pretraining compute: {ledger['base_pretraining_flops'] / 1e12:,.2f} TFLOPs "
                  f"({ledger['base_pretraining_source']}).", ""]
    lines += [f"- {name}: **{share:.3g}%** of the base model's pretraining compute"
              for name, share in ledger["percent_of_base_pretraining"].items()]
    lines += ["", "## Stages", ""] + [f"- `{s['stage']}`: {s.get('checkpoint', '')}" for s in stages]
    lines += ["", "Plots: `loss_curves.png` (training loss per stage), `results.png` (benchmark scores).", ""]
    return "\n".join(lines)


def plot_losses(stage_dirs: Mapping[str, Path], path: Path) -> None:
    """Training loss against step, one line per training stage (one point per step: its latest row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for stage, folder in stage_dirs.items():
        if (folder / "metrics.jsonl").is_file():
            per_step = {r["step"]: r["loss"] for r in read_metrics(folder / "metrics.jsonl") if "loss" in r}
            steps = sorted(per_step)
            ax.plot(steps, [per_step[s] for s in steps], label=stage)
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target token")
    ax.set_title("training loss per stage")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def plot_results(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Grouped bars: each benchmark (and the normalized average) for the four models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["kind"] != "task"]
    models = [m for m in MODELS if any(m in r for r in shown)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(shown) + 2), 4.5))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        xs = [j + i * width for j in range(len(shown))]
        ax.bar(xs, [r.get(m) or 0.0 for r in shown], width, label=LABELS[m])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shown))], [r["metric"] for r in shown],
                  rotation=20, ha="right")
    ax.set_ylabel("score")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    """Writes a PNG to a local or remote path (one write) and closes the figure."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    fs.path(path).write_bytes(buffer.getvalue())


def write_report(model_dir: Path, results: Mapping[str, Mapping[str, Any]], ledger: dict[str, Any],
                 stages: Sequence[dict[str, Any]], stage_dirs: Mapping[str, Path], title: str
                 ) -> dict[str, Any]:
    rows = table(results)
    report = {"title": title, "table": rows, "ledger": ledger, "stages": list(stages),
              "results_files": {m: str(model_dir / "eval" / m / "results.json") for m in results}}
    fs.write_text(model_dir / "report.json", json.dumps(report, indent=1) + "\n")
    fs.write_text(model_dir / "report.md", markdown(rows, ledger, stages, title))
    plot_losses(stage_dirs, model_dir / "loss_curves.png")
    if rows:
        plot_results(rows, model_dir / "results.png")
    return report
