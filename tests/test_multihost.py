"""Two local processes (jax.distributed, CPU gloo collectives) train like one process fed both hosts' data."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from flan_ul2r import partitioning
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.models.config import preset
from flan_ul2r.training.config import MeshConfig, ModelSpec, OptimizerConfig
from flan_ul2r.training.trainer import Trainer
from tests._train_toy import LENGTHS, register_toy_mixture
from tests._xla import xla_flags

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
MODEL = ModelSpec(shape=preset("tiny", vocab_size=362, d_model=32, d_ff=64, head_dim=8))
OPT = OptimizerConfig(name="adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=2,
                      final_learning_rate=1e-5)
MESH = MeshConfig(data=1, fsdp=-1, rules="fsdp")
STEPS = 60  # the run's length (its cosine schedule); host 1's SIGTERM stops both hosts after a few steps

WORKER = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = {flags!r}
    sys.path.insert(0, {root!r})
    from flan_ul2r.cli import prepare_process
    prepare_process()  # as `flan-ul2r train` starts
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
    from tests._train_child import SlowData
    from tests._train_toy import LENGTHS, register_toy_mixture
    from flan_ul2r.models.config import ModelConfig
    from flan_ul2r.training import loop
    from flan_ul2r.training.config import CheckpointConfig, MeshConfig, ModelSpec, OptimizerConfig, RunConfig
    from flan_ul2r.training.run import run
    make = loop.make_data
    loop.make_data = lambda cfg, state: SlowData(make(cfg, state), 0.3)  # so the signal lands mid-run
    summary = run(RunConfig(model_dir=sys.argv[3], mixture_or_task_name=register_toy_mixture(),
                            task_feature_lengths=LENGTHS, train_steps={steps}, batch_size=8, model={model!r},
                            mesh={mesh!r}, optimizer={opt!r}, checkpoint=CheckpointConfig(period=1000),
                            progress=True))
    print("STOPPED", jax.process_index(), jax.device_count(), summary["final_step"], summary["preempted"],
          flush=True)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference_losses(steps: int) -> list[float]:
    """One process, 4 devices, the global batch = host 0's rows then host 1's rows."""
    name = register_toy_mixture()
    its = [make_train_iterator(name, LENGTHS, 4, seed=0, shard_index=i, num_shards=2) for i in range(2)]
    mesh, rules = MESH.build(devices=jax.devices()[:4])
    tx, _ = OPT.build(STEPS)
    trainer = Trainer(MODEL.resolve(None), tx, mesh, rules)
    state, losses = trainer.init_state(0), []
    for _ in range(steps):
        parts = [next(it) for it in its]
        batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        state, m = trainer.train_step(state, partitioning.global_batch(batch, mesh))
        losses.append(float(m["loss"]))
    return losses


@pytest.mark.slow
def test_two_processes_train_like_one_and_a_sigterm_to_one_host_stops_both_at_the_same_step(tmp_path):
    """Each host feeds its shard of the batch (2 processes x 2 devices); only host 1 gets SIGTERM, and
    JAX's preemption sync point makes both hosts save the same step and stop. Every step before it has
    the loss of one process fed both shards."""
    script = WORKER.format(root=str(ROOT), steps=STEPS, model=MODEL, opt=OPT, mesh=MESH, flags=xla_flags(2))
    addr, run_dir = f"127.0.0.1:{_free_port()}", tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, "-c", script, addr, str(i), str(run_dir)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    metrics, deadline = run_dir / "metrics.jsonl", time.monotonic() + 600
    while time.monotonic() < deadline and all(p.poll() is None for p in procs) and not (
            metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    stopped = [line.split() for out in outs for line in out.splitlines() if line.startswith("STOPPED")]
    assert len(stopped) == 2, outs[1][-3000:]
    assert sorted(s[1] for s in stopped) == ["0", "1"] and all(s[2] == "4" for s in stopped)  # 2 x 2 devices
    steps = {int(s[3]) for s in stopped}
    assert len(steps) == 1 and 3 <= min(steps) < STEPS, stopped
    step = int(stopped[0][3])
    assert all(" ".join(s[4:]) == "preemption notice (JAX sync point)" for s in stopped)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == [str(step)]
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, step + 1))  # only the chief writes metrics
    np.testing.assert_allclose([r["loss"] for r in rows], _reference_losses(step), rtol=1e-5)
