"""`flan-ul2r train` end to end on the default UL2R mixture, and its bad-input messages."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._xla import xla_flags

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "XLA_FLAGS": xla_flags(2)}
SMOKE = ("--gin_file=gin/runs/ul2r.gin", "--gin_file=gin/models/tiny.gin",
         "--gin_file=gin/runs/cpu_smoke.gin")


def _train(*args, cwd=ROOT):
    cmd = [sys.executable, "-m", "flan_ul2r.cli", "train", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("smoke")
    out = _train(*SMOKE,
                 f"--gin.MODEL_DIR={model_dir}", "--gin.TRAIN_STEPS=30", "--gin.CHECKPOINT_PERIOD=20")
    assert out.returncode == 0, out.stderr[-4000:]
    return model_dir, out


@pytest.mark.slow
def test_smoke_run_learns_and_writes_everything(smoke_run):
    model_dir, _ = smoke_run
    rows = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 31))  # every step logged in smoke runs
    losses = [r["loss"] for r in rows]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3, losses
    for key in ("accuracy", "learning_rate", "grad_norm", "tokens_per_second", "mfu", "tflops_per_device",
                "mfu_causal_halved"):
        assert key in rows[-1]
    assert 0 < rows[-1]["mfu_causal_halved"] < rows[-1]["mfu"]  # MaxText's count: attention halved
    assert sorted(p.name for p in (model_dir / "checkpoints").iterdir() if p.name.isdigit()) == ["20", "30"]
    assert any(f.name.startswith("events.out.tfevents") for f in (model_dir / "tb").iterdir())
    operative = (model_dir / "config.gin").read_text()
    assert "TRAIN_STEPS = 30" in operative and "MIXTURE_OR_TASK_NAME = 'ul2r'" in operative
    assert (model_dir / "loss.png").stat().st_size > 1000
    assert json.loads((model_dir / "vocab.json").read_text())["mode_tokens"]
    info = json.loads((model_dir / "train_info.json").read_text())  # ul2r trains with a bidirectional prefix
    assert info["prefix_lm"] is True and info["sequence_length"] == 256


@pytest.mark.slow
def test_a_finished_run_re_run_exits_0_with_a_message(smoke_run):
    model_dir, _ = smoke_run
    metrics = (model_dir / "metrics.jsonl").read_text()
    out = _train(*SMOKE,
                 f"--gin.MODEL_DIR={model_dir}", "--gin.TRAIN_STEPS=30")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "is at step 30 >= TRAIN_STEPS=30: the run is finished, nothing to do" in out.stderr
    assert (model_dir / "metrics.jsonl").read_text() == metrics  # nothing trained, nothing logged


