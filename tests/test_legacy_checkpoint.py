"""A run written by the code before the typed-config restructure (commit 399aeae: `train_cmd.train` with
dict configs, tiny 1-layer model, Adafactor, 2 steps on the toy mixture) still restores: `load_model`
reads its params, the trainer restores its full state (params and Adafactor statistics) exactly as saved,
and the run resumes at step 3 from its saved data position.

The examples after the saved position differ from that run's: the T5 concatenate-then-split chunking
(flan_ul2r/data/ul2/chunking.py) changed how the corpus is cut, a documented change of the data stream."""
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import flan_ul2r
from flan_ul2r.models.config import preset
from flan_ul2r.training import checkpoints
from flan_ul2r.training.config import CheckpointConfig, MeshConfig, ModelSpec, OptimizerConfig, RunConfig
from flan_ul2r.training.run import run
from flan_ul2r.training.trainer import Trainer
from tests._train_toy import LENGTHS, register_toy_mixture

FIXTURE = Path(__file__).parent / "fixtures" / "run_written_before_the_restructure"
SHAPE = preset("tiny", vocab_size=362, num_layers=1, d_model=16, num_heads=2, num_kv_heads=1, head_dim=8,
               d_ff=32)
OPTIMIZER = OptimizerConfig(name="adafactor", learning_rate=1e-3)


def _raw_state() -> dict:
    """The saved state as orbax reads it with no target (numpy leaves): an independent reference."""
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore((FIXTURE / "checkpoints" / "2" / "state").absolute())


def test_load_model_reads_the_old_checkpoint():
    m = flan_ul2r.load_model(FIXTURE / "checkpoints" / "2")
    assert m.config == SHAPE
    raw = _raw_state()["params"]
    for a, b in zip(jax.tree.leaves(m.params), jax.tree.leaves(raw)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert m.vocab.eos_id == 1 and len(m.vocab.sentinel_ids) == 100


def test_the_trainer_restores_the_whole_old_state():
    mesh, rules = MeshConfig().build()
    tx, _ = OPTIMIZER.build(3)
    trainer = Trainer(SHAPE, tx, mesh, rules)
    ckpts = checkpoints.TrainCheckpoints(FIXTURE.absolute(), period=0, keep=None, async_save=False)
    try:
        state, data_state = ckpts.restore(2, trainer.abstract_state)
    finally:
        ckpts.close()
    assert int(state.step) == 2 and data_state["draw"] == 16
    raw = _raw_state()
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(raw["params"])):  # both: sorted dict keys
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # optax's named tuples and orbax's plain dicts order the optimizer leaves differently: compare them as
    # a multiset of (shape, bytes)
    key = lambda x: (np.asarray(x).shape, np.asarray(x).tobytes())
    restored = sorted(map(key, jax.tree.leaves(state.opt_state)))
    saved = sorted(map(key, jax.tree.leaves(raw["opt_state"])))
    assert restored == saved


@pytest.mark.slow
def test_the_old_run_resumes_at_step_3(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old)
    resumed = run(RunConfig(model_dir=str(old), mixture_or_task_name=register_toy_mixture(),
                            task_feature_lengths=LENGTHS, train_steps=3, batch_size=8, model=ModelSpec(),
                            optimizer=OPTIMIZER, checkpoint=CheckpointConfig(period=2), progress=True))
    assert resumed["final_step"] == 3 and np.isfinite(resumed["metrics"]["loss"])
    logged = [json.loads(line)["step"] for line in (old / "metrics.jsonl").read_text().splitlines()]
    assert logged == [3]  # it resumed at step 2, it did not start over
    assert (old / "checkpoints" / "3").is_dir()
