"""Training metrics: MODEL_DIR/metrics.jsonl, TensorBoard events, a progress bar, and a loss plot (PNG)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tqdm import tqdm


class MetricsWriter:
    """One JSON object per logged step (`step`, `loss`, ...), the same scalars in TensorBoard, and a bar."""

    def __init__(self, model_dir: str | Path, total_steps: int, start_step: int, enabled: bool = True):
        self.model_dir = Path(model_dir)
        self.enabled = enabled
        self._jsonl = open(self.model_dir / "metrics.jsonl", "a") if enabled else None
        self._tb = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.model_dir / "tb"))
        self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step",
                         disable=not enabled, dynamic_ncols=True)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        for k, v in scalars.items():
            if math.isfinite(float(v)):
                self._tb.add_scalar(k if "/" in k else f"train/{k}", float(v), int(step))
        shown = {k: scalars[k] for k in ("loss", "tokens_per_second", "mfu") if k in scalars}
        self._bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._jsonl is not None:
            self._jsonl.close()
            plot_losses(self.model_dir / "metrics.jsonl", self.model_dir / "loss.png")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_losses(metrics_path: Path, png_path: Path) -> None:
    """Loss and learning rate against step (rows without a training loss, e.g. eval rows, are skipped)."""
    rows = [r for r in read_metrics(metrics_path) if "loss" in r]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["loss"] for r in rows], label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per target token)")
    if "learning_rate" in rows[0]:
        lr_ax = ax.twinx()
        lr_ax.plot(steps, [r["learning_rate"] for r in rows], color="tab:orange", alpha=0.6)
        lr_ax.set_ylabel("learning rate")
    ax.set_title(png_path.parent.name)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
