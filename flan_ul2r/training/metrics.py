"""Training metrics: MODEL_DIR/metrics.jsonl, TensorBoard events in MODEL_DIR/tb, a progress bar, and a
loss plot MODEL_DIR/loss.png, on any filesystem (`flan_ul2r.fs`).

metrics.jsonl holds one row per logged step: a run resumed from a checkpoint older than its last logged
step (it was killed after logging steps it had not saved) first cuts the file back to the checkpoint's
step (`cut_after`), then logs the replayed steps anew. The first row a resumed process writes carries
`"resumed_from": <the step it restored>`, and loss.png marks those steps. `read_metrics` also keeps only
the latest row per step, for files written before the cut existed.
"""
from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from flan_ul2r import fs

SHOWN = ("loss", "tokens_per_second", "mfu")


class MetricsWriter:
    """One JSON object per logged step (`step`, `loss`, ...), the same scalars in TensorBoard, and a bar.

    `write_files=False` (hosts other than 0) writes nothing; `show_bar=False` hides only the bar. Rows are
    appended to metrics.jsonl every `flush_seconds` (0: every row; object stores rewrite the object on
    each append, so remote runs flush every 30 s), at each checkpoint (`flush()`) and at the end;
    TensorBoard events every 30 s, at each checkpoint and at the end."""

    def __init__(self, model_dir: fs.PathLike, total_steps: int, start_step: int, *, write_files: bool = True,
                 show_bar: bool = True, flush_seconds: float | None = None):
        self.model_dir = fs.path(model_dir)
        self.write_files = write_files
        self.flush_seconds = (30.0 if fs.is_remote(model_dir) else 0.0) if flush_seconds is None \
            else flush_seconds
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self._resumed_from = start_step if start_step > 0 else None
        self._tb = None
        if write_files:
            from flan_ul2r.training.tensorboard import summary_writer

            self.model_dir.mkdir(parents=True, exist_ok=True)
            cut_after(self.model_dir / "metrics.jsonl", start_step)
            self._tb = summary_writer(str(self.model_dir / "tb"))
        self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step",
                         disable=not show_bar, dynamic_ncols=True)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        shown = {k: scalars[k] for k in SHOWN if k in scalars}
        self._bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        if not self.write_files:
            return
        row: dict[str, Any] = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        if self._resumed_from is not None:
            row["resumed_from"], self._resumed_from = self._resumed_from, None
        self._pending.append(json.dumps(row) + "\n")
        for k, v in scalars.items():
            if math.isfinite(float(v)):
                self._tb.add_scalar(k if "/" in k else f"train/{k}", float(v), int(step))
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self._append_rows()

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def _append_rows(self) -> None:
        self._last_flush = time.monotonic()
        if self._pending:
            with (self.model_dir / "metrics.jsonl").open("a") as f:
                f.write("".join(self._pending))
            self._pending.clear()

    def flush(self) -> None:
        """Appends the pending rows to metrics.jsonl and flushes TensorBoard (which otherwise flushes
        itself every 30 s)."""
        if self.write_files:
            self._append_rows()
            self._tb.flush()

    def close(self) -> None:
        self._bar.close()
        if not self.write_files:
            return
        self.flush()
        self._tb.close()
        path = self.model_dir / "metrics.jsonl"
        if path.exists():
            plot_losses(path, self.model_dir / "loss.png")


def _whole_rows(text: str) -> str:
    """`text` without a last row that a process killed mid-append left unfinished (no final newline)."""
    return text[: text.rfind("\n") + 1]


def cut_after(path: fs.PathLike, step: int) -> None:
    """Keeps the whole rows of steps <= `step` (the checkpoint a run resumes from; 0 for a fresh start):
    the rows of steps a killed run logged but never saved are logged again by the resumed run."""
    path = fs.path(path)
    if not path.exists():
        return
    text = fs.read_text(path)
    kept = [line for line in _whole_rows(text).splitlines(keepends=True)
            if line.strip() and _row_step(line) <= step]
    if "".join(kept) != text:
        fs.write_text(path, "".join(kept))


def _row_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return float("-inf")  # not a row this writer made: kept, and `read_rows` names its line


def read_rows(path: fs.PathLike) -> list[dict[str, Any]]:
    """Every row of a metrics.jsonl as written (replayed steps appear again after a resume). A last row
    cut short by a kill (no final newline) is left out; any other bad row is an error naming its line."""
    rows = []
    for n, line in enumerate(_whole_rows(fs.read_text(path)).splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n} is not a JSON object ({e.msg})") from None
    return rows


def latest_per_step(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step, the last one written, in step order."""
    by_step = {int(r["step"]): r for r in rows}
    return [by_step[s] for s in sorted(by_step)]


def read_metrics(path: fs.PathLike) -> list[dict[str, Any]]:
    """metrics.jsonl as one row per step (the latest), in step order."""
    return latest_per_step(read_rows(path))


def resume_steps(rows: Iterable[dict[str, Any]]) -> list[int]:
    """The steps runs were resumed from (the `resumed_from` marks)."""
    return sorted({int(r["resumed_from"]) for r in rows if "resumed_from" in r})


def plot_losses(metrics_path: fs.PathLike, png_path: fs.PathLike) -> None:
    """Loss and learning rate against step, one point per step; dashed lines where runs resumed."""
    raw = read_rows(metrics_path)
    rows = [r for r in latest_per_step(raw) if "loss" in r]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["loss"] for r in rows], label="loss")
    resumes = resume_steps(raw)
    for i, step in enumerate(resumes):
        ax.axvline(step, color="gray", linestyle="--", linewidth=0.8, label="resumed" if i == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per target token)")
    if "learning_rate" in rows[0]:
        lr_ax = ax.twinx()
        lr_ax.plot(steps, [r.get("learning_rate", math.nan) for r in rows], color="tab:orange", alpha=0.6)
        lr_ax.set_ylabel("learning rate")
    if resumes:
        ax.legend(loc="upper right")
    ax.set_title(fs.path(png_path).parent.name)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    fs.path(png_path).write_bytes(buffer.getvalue())
