"""A run written by the code before the typed-config restructure (commit 399aeae: `train_cmd.train` with
dict configs, tiny 1-layer model, Adafactor, 2 steps on the toy mixture) still restores: `load_model`
reads it, and resuming it gives exactly the step a straight run of today's code gives."""
import json
import shutil
from pathlib import Path

import numpy as np

import flan_ul2r
from flan_ul2r.models.config import preset
from flan_ul2r.training.config import CheckpointConfig, ModelSpec, OptimizerConfig, RunConfig
from flan_ul2r.training.run import run
from tests._train_toy import LENGTHS, register_toy_mixture

FIXTURE = Path(__file__).parent / "fixtures" / "run_written_before_the_restructure"
SHAPE = preset("tiny", vocab_size=362, num_layers=1, d_model=16, num_heads=2, num_kv_heads=1, head_dim=8,
               d_ff=32)


def _config(model_dir, model):
    return RunConfig(model_dir=str(model_dir), mixture_or_task_name=register_toy_mixture(),
                     task_feature_lengths=LENGTHS, train_steps=3, batch_size=8, model=model,
                     optimizer=OptimizerConfig(name="adafactor", learning_rate=1e-3),
                     checkpoint=CheckpointConfig(period=2), progress=True)


def test_load_model_reads_the_old_checkpoint():
    m = flan_ul2r.load_model(FIXTURE / "checkpoints" / "2")
    assert m.config == SHAPE
    assert np.asarray(m.params["embedding"]).shape == (362, 16)
    assert m.vocab.eos_id == 1 and len(m.vocab.sentinel_ids) == 100


def test_resuming_the_old_run_matches_a_straight_run_of_todays_code(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old)
    resumed = run(_config(old, ModelSpec()))  # shape from the run's model_config.json
    straight = run(_config(tmp_path / "new", ModelSpec(shape=SHAPE)))
    assert resumed["final_step"] == straight["final_step"] == 3
    logged = [json.loads(line)["step"] for line in (old / "metrics.jsonl").read_text().splitlines()]
    assert logged == [3]  # it resumed at step 2 (state and data position), it did not start over
    assert resumed["metrics"]["loss"] == straight["metrics"]["loss"]
