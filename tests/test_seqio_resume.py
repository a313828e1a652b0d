"""A run over a plain seqio task (seqio path: counted-skip resume), killed and resumed, is bit-identical."""
from __future__ import annotations

import json
import sys

import pytest

from flan_ul2r.gin_utils import import_task_modules
from flan_ul2r.training.checkpoints import TrainCheckpoints
from tests._train_toy import train_tiny
from tests._user_tasks import write_user_module


@pytest.fixture(scope="module")
def user_tasks(tmp_path_factory):
    import flan_ul2r.tasks

    flan_ul2r.tasks.import_all()
    folder = tmp_path_factory.mktemp("project")
    write_user_module(folder, "my_tasks")
    sys.path.insert(0, str(folder))
    import_task_modules("my_tasks")
    yield
    sys.path.remove(str(folder))


def _run(model_dir, steps, **kw):
    return train_tiny(model_dir, "my_prefix_lm", steps, **kw)


def _losses(model_dir):
    rows = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


@pytest.mark.slow
def test_killed_and_resumed_run_on_a_plain_seqio_task_is_bit_identical(user_tasks, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    _run(whole, 6)
    _run(part, 6, stop_after_steps=4)  # "killed" after step 4; the last checkpoint is step 3 (period 3)
    ckpts = TrainCheckpoints(part, 3)
    assert ckpts.latest_step() == 3
    ckpts.close()
    saved = json.loads((part / "checkpoints" / "3" / "data" / "metadata").read_text())  # orbax JsonSave
    assert saved["mode"] == "seqio" and min(saved["cursors"].values()) > 0 and saved["fingerprints"]
    _run(part, 6)  # resumes from step 3: the seqio streams are skipped to the saved cursors
    a, b = _losses(whole), _losses(part)
    for step in range(4, 7):
        assert a[step] == b[step], step  # bit-identical on CPU
