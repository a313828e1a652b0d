"""The report's PNGs: training loss per stage, and each summary score of the four models with its 95%
interval as an error bar."""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from etils import epath

from flan_ul2r import fs
from flan_ul2r.training.metrics import read_metrics


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(stage_dirs: Mapping[str, epath.Path], path: epath.Path) -> None:
    """Training loss against step, one line per training stage (one point per step: its latest row)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for stage, folder in stage_dirs.items():
        if (folder / "metrics.jsonl").is_file():
            per_step = {r["step"]: r["loss"] for r in read_metrics(folder / "metrics.jsonl") if "loss" in r}
            steps = sorted(per_step)
            ax.plot(steps, [per_step[s] for s in steps], label=stage)
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target token")
    ax.set_title("training loss per stage")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def _errors(cells: Sequence[Mapping[str, Any] | None]) -> tuple[list[float], list[list[float]]]:
    """Bar heights and [below, above] error lengths (0 where a cell has no interval)."""
    heights, below, above = [], [], []
    for c in cells:
        score = float(c["score"]) if c and not math.isnan(c["score"]) else 0.0
        low = c.get("ci_low", math.nan) if c else math.nan
        high = c.get("ci_high", math.nan) if c else math.nan
        heights.append(score)
        below.append(0.0 if math.isnan(low) else max(0.0, score - low))
        above.append(0.0 if math.isnan(high) else max(0.0, high - score))
    return heights, [below, above]


def _bars(ax: Any, rows: Sequence[dict[str, Any]], models: Sequence[str], labels: Mapping[str, str]) -> None:
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        heights, errors = _errors([r.get(m) for r in rows])
        ax.bar([j + i * width for j in range(len(rows))], heights, width, yerr=errors, capsize=2,
               label=labels[m])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], [r["metric"] for r in rows],
                  rotation=30, ha="right")


def plot_results(rows: Sequence[dict[str, Any]], path: epath.Path, models: Sequence[str],
                 labels: Mapping[str, str]) -> None:
    """Grouped bars with 95% error bars: every summary row (benchmarks, averages, the normalized average)
    for the four models; the LM loss (nats per byte, lower is better) in a panel of its own."""
    plt = _pyplot()
    shown = [r for r in rows if r["kind"] != "task"]
    losses = [r for r in shown if r["metric"] == "LM-Loss"]
    scores = [r for r in shown if r["metric"] != "LM-Loss"]
    present = [m for m in models if any(m in r for r in shown)]
    panels = [p for p in (scores, losses) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.0, 1.1 * len(shown) + 3), 5),
                             gridspec_kw={"width_ratios": [len(p) + 1 for p in panels]}, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _bars(ax, panel, present, labels)
        ax.set_ylabel("nats per byte (lower is better)" if panel is losses else "score (%)")
    axes[0][0].legend()
    fig.suptitle("the four models, with 95% intervals")
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: epath.Path) -> None:
    """Writes a PNG to a local or remote path (one write) and closes the figure."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    fs.path(path).write_bytes(buffer.getvalue())
