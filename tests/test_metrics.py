"""training/metrics.py: a resume cuts metrics.jsonl back to its checkpoint (one row per step, the resumed
run's), resumes marked in the plot, and `show_bar=False` hides only the bar."""
import json

import matplotlib.axes
import pytest

from flan_ul2r.training.metrics import MetricsWriter, plot_losses, read_metrics, read_rows, resume_steps


def _run(model_dir, start, stop, loss_offset, show_bar=False):
    writer = MetricsWriter(model_dir, total_steps=10, start_step=start, show_bar=show_bar)
    for step in range(start + 1, stop + 1):
        writer.write(step, {"loss": 10.0 - step + loss_offset, "learning_rate": 1e-3})
        writer.advance()
    writer.close()


def test_a_resume_cuts_the_killed_runs_rows_back_to_the_checkpoint(tmp_path, monkeypatch):
    _run(tmp_path, 0, 5, loss_offset=0.0)  # killed after step 5, last checkpoint at step 3
    _run(tmp_path, 3, 7, loss_offset=0.5)  # resumed: steps 4, 5 again
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]  # the file itself: one row per step
    assert resume_steps(rows) == [3]
    latest = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in latest] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["loss"] for r in latest] == [9.0, 8.0, 7.0, 6.5, 5.5, 4.5, 3.5]

    drawn = {}
    plot, axvline = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.axvline
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, x, y, **kw: drawn.setdefault("x", list(x)) and plot(self, x, y, **kw))
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline",
                        lambda self, x, **kw: drawn.setdefault("v", []).append(x) or axvline(self, x, **kw))
    plot_losses(tmp_path / "metrics.jsonl", tmp_path / "again.png")
    assert drawn["x"] == [1, 2, 3, 4, 5, 6, 7]  # one point per step, never back in time
    assert drawn["v"] == [3]


def test_hiding_the_bar_still_writes_metrics_tensorboard_and_the_plot(tmp_path, capsys):
    _run(tmp_path, 0, 3, loss_offset=0.0, show_bar=False)
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert any(f.name.startswith("events.out.tfevents") for f in (tmp_path / "tb").iterdir())
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert "train:" not in capsys.readouterr().err  # no bar
    _run(tmp_path / "shown", 0, 2, loss_offset=0.0, show_bar=True)
    assert "train:" in capsys.readouterr().err


def test_a_row_cut_short_by_a_kill_is_dropped_and_the_resumed_run_appends_whole_rows(tmp_path):
    _run(tmp_path, 0, 4, loss_offset=0.0)
    path = tmp_path / "metrics.jsonl"
    whole = path.read_text()
    path.write_text(whole + '{"step": 5, "loss": 4.')  # SIGKILL in the middle of an append
    assert [r["step"] for r in read_rows(path)] == [1, 2, 3, 4]  # readable while cut
    _run(tmp_path, 4, 6, loss_offset=0.0)  # resumed
    assert path.read_text().startswith(whole) and path.read_text().endswith("\n")
    assert [r["step"] for r in read_rows(path)] == [1, 2, 3, 4, 5, 6]
    path.write_text(whole.replace('{"step": 2', '{"step" 2', 1))
    with pytest.raises(ValueError, match="line 2 is not a JSON object"):
        read_rows(path)
