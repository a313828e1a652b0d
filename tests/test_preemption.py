"""Preemption end to end: SIGTERM mid-run -> a checkpoint of the step reached, exit status 75, and the
resumed run is bit-identical to a straight one (a finished run re-run: tests/test_train_cli.py).

Child processes run `flan-ul2r train` on the toy mixture (tests/_train_child.py) on one CPU device and
share a JAX compilation cache, so the step compiles once for the three runs.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from flan_ul2r.training.checkpoints import restore_params
from flan_ul2r.training.preemption import PREEMPTED_EXIT_CODE
from tests._xla import xla_flags

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
STEPS = 12


def _env(cache, **extra):
    return {**os.environ, "XLA_FLAGS": xla_flags(1), "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0", **extra}


def _args(model_dir):
    return ["--gin_file=gin/runs/train.gin", "--gin_file=gin/models/tiny.gin",
            "--gin.MIXTURE_OR_TASK_NAME=toy_ul2r", "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 32}",
            f"--gin.TRAIN_STEPS={STEPS}", f"--gin.MODEL_DIR={model_dir}", "--gin.BATCH_SIZE=8",
            "--gin.CHECKPOINT_PERIOD=100", "--gin.RunConfig.progress=False"]


def _train(model_dir, env):
    cmd = [sys.executable, "-m", "tests._train_child", *_args(model_dir)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _rows(model_dir):
    path = model_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _sigterm_after(model_dir, env, logged_steps):
    """Starts a slowed-down run and sends SIGTERM once `logged_steps` rows are in metrics.jsonl."""
    cmd = [sys.executable, "-m", "tests._train_child", *_args(model_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while len(_rows(model_dir)) < logged_steps and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _steps(model_dir):
    return sorted(int(p.name) for p in (model_dir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_sigterm_saves_the_step_reached_and_resume_is_bit_identical(tmp_path):
    cache = tmp_path / "jax_cache"
    straight, preempted = tmp_path / "straight", tmp_path / "preempted"
    out = _train(straight, _env(cache))
    assert out.returncode == 0, out.stderr[-3000:]

    rc, _, err = _sigterm_after(preempted, _env(cache, FLAN_UL2R_TEST_BATCH_DELAY="0.5"), logged_steps=3)
    assert rc == PREEMPTED_EXIT_CODE, err[-3000:]
    reached = _rows(preempted)[-1]["step"]
    assert 3 <= reached < STEPS
    assert _steps(preempted) == [reached]  # the period (100) never came: this is the preemption save
    # RunConfig.progress=False hides the bar only: metrics, TensorBoard and the plot are written
    assert (preempted / "loss.png").is_file() and any((preempted / "tb").iterdir())
    assert f"stopped by SIGTERM after saving step {reached}; exit status {PREEMPTED_EXIT_CODE}" in err

    out = _train(preempted, _env(cache))  # the same command resumes
    assert out.returncode == 0, out.stderr[-3000:]
    a = {r["step"]: r for r in _rows(straight)}
    b = {r["step"]: r for r in _rows(preempted)}
    assert b[reached + 1]["resumed_from"] == reached
    for step in range(1, STEPS + 1):
        assert a[step]["loss"] == b[step]["loss"], step  # bit-identical on CPU
    final_a, _ = restore_params(straight / "checkpoints" / str(STEPS))
    final_b, _ = restore_params(preempted / "checkpoints" / str(STEPS))
    for x, y in zip(jax.tree.leaves(final_a), jax.tree.leaves(final_b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
