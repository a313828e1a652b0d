"""A run over a plain seqio task (seqio path: counted-skip resume), killed and resumed, is bit-identical."""
from __future__ import annotations

import json
import sys

import pytest
from _user_tasks import write_user_module

from flan_ul2r.gin_utils import import_task_modules
from flan_ul2r.main.train import train
from flan_ul2r.training.checkpoints import TrainCheckpoints

LENGTHS = {"inputs": 32, "targets": 32}


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
    return train(model_dir=str(model_dir), mixture_or_task_name="my_mix", task_feature_lengths=LENGTHS,
                 train_steps=steps, batch_size=8, model={"preset": "tiny", "vocab_size": None, "d_model": 32,
                                                         "d_ff": 64, "head_dim": 8},
                 mesh={"data": 1, "fsdp": -1, "tensor": 1, "rules": "fsdp"},
                 optimizer=dict(name="adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=2,
                                final_learning_rate=1e-5, weight_decay=0.0, clip_norm=1.0),
                 checkpoint_period=3, progress=True, **kw)


def _losses(model_dir):
    rows = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_killed_and_resumed_run_on_a_plain_seqio_mixture_is_bit_identical(user_tasks, tmp_path):
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
