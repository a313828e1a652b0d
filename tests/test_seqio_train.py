"""`flan-ul2r train` on the user's own seqio tasks, found through MIXTURE_OR_TASK_MODULE."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._user_tasks import write_user_module
from tests._xla import xla_flags

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "XLA_FLAGS": xla_flags(2)}


def _train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flan_ul2r.cli", "train", "--gin_file=gin/runs/ul2r.gin",
           "--gin_file=gin/models/tiny.gin", "--gin.CHECKPOINT_PERIOD=final", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("project")  # the user's working directory: my_tasks.py + data
    write_user_module(folder, "my_tasks")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", ["my_prefix_lm", "my_mix"])
def test_train_on_a_plain_seqio_task_and_a_mixture_with_a_builtin(project, name):
    model_dir = project / f"run_{name}"
    out = _train(project, f"--gin.MIXTURE_OR_TASK_NAME={name}", "--gin.MIXTURE_OR_TASK_MODULE=my_tasks",
                 f"--gin.MODEL_DIR={model_dir}", "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2")
    assert out.returncode == 0, out.stderr[-4000:]
    rows = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
    assert json.loads((model_dir / "train_info.json").read_text())["mixture_or_task_name"] == name

