"""The training loop: batches in, steps, metrics out (every `log_every` steps), checkpoints on period.

The main thread never waits on the host: batches are fetched, packed and put on the devices by a
background thread (`prefetch.DevicePrefetcher`, double-buffered), and a step's metrics are fetched with
`jax.device_get` only after the next step has been dispatched (one step late), so the devices always
have the next step queued. Exceptions: save steps and the last step fetch their own metrics first (a
checkpoint is written only for a finite loss and finite parameters).

Metrics per logged step (metrics.jsonl, TensorBoard, the progress bar): the step's loss terms, accuracy,
gradient norm and learning rate, plus tokens/s, step time, TFLOP/s per device and MFU against the
device's peak in both attention conventions of training/compute.py: `mfu` (attention counted in full, PaLM)
and `mfu_causal_halved` (MaxText's count). Step time is the time between two consecutive metric fetches (the
device's pace, once the queue is full). A non-finite loss stops the run, one step late at the latest,
without saving that state; the newest checkpoint is the last good one. A preemption notice
(training/preemption.py) ends the run after the current step with a checkpoint of that step. Every
`eval_period` steps `PeriodicEval` writes validation loss and eval-suite scores (training/periodic_eval.py).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r.training import checkpoints, compute, partitioning
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.metrics import MetricsWriter
from flan_ul2r.training.periodic_eval import PeriodicEval
from flan_ul2r.training.preemption import PreemptionWatcher
from flan_ul2r.training.prefetch import DevicePrefetcher
from flan_ul2r.training.trainer import Trainer, TrainState, check_batch


@dataclasses.dataclass
class LoopResult:
    state: TrainState
    metrics: dict[str, float]  # the last logged row
    preempted: str | None = None  # the signal that stopped the run early


def make_data(cfg: RunConfig, data_state: dict[str, Any] | None) -> Any:
    """This host's share of the batch stream, positioned at `data_state` (None = the start)."""
    from flan_ul2r.data.loader import make_train_iterator

    hosts = jax.process_count()
    return make_train_iterator(cfg.mixture_or_task_name, cfg.task_feature_lengths, cfg.batch_size // hosts,
                               seed=cfg.seed, shard_index=jax.process_index(), num_shards=hosts,
                               state=data_state)


@jax.jit
def _all_finite(params: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]))


class _Pending:
    """A dispatched step whose metrics have not been read yet."""

    def __init__(self, step: int, metrics: dict[str, jax.Array], tokens: int):
        self.step, self.metrics, self.tokens = step, metrics, tokens


class _Logger:
    """Reads a step's metrics (a device_get), checks the loss, adds throughput, writes the row."""

    def __init__(self, cfg: RunConfig, trainer: Trainer, ckpts: checkpoints.TrainCheckpoints,
                 writer: MetricsWriter, start_step: int):
        self.cfg, self.ckpts, self.writer = cfg, ckpts, writer
        self.flops_per_token = compute.train_flops_per_token(trainer.cfg, cfg.sequence_length)
        self.causal_halved = compute.train_flops_per_token(trainer.cfg, cfg.sequence_length, "causal_halved")
        self.peak = compute.device_peak_tflops() or compute.measure_matmul_peak()
        self.last: dict[str, float] = {}
        self.evaluator: PeriodicEval | None = None
        self._clock = time.perf_counter()
        self._clock_step = start_step  # the first interval: start-up, compilation and the first step

    def log(self, pending: _Pending) -> dict[str, float]:
        values = {k: float(v) for k, v in jax.device_get(pending.metrics).items()}
        if not math.isfinite(values["loss"]):
            raise FloatingPointError(nan_message(f"loss is {values['loss']}", pending.step, self.ckpts))
        now = time.perf_counter()
        steps = max(pending.step - self._clock_step, 1)
        seconds = (now - self._clock) / steps
        self._clock, self._clock_step = now, pending.step
        tokens = float(pending.tokens) * jax.process_count()
        values.update(_throughput(tokens, seconds, self.flops_per_token, self.peak))
        values["mfu_causal_halved"] = values["mfu"] * self.causal_halved / self.flops_per_token  # compute.py
        self.writer.write(pending.step, values)
        self.last = values
        return values

    def restart_clock(self, step: int) -> None:
        """After a blocking pause (a checkpoint save) the next interval would include it."""
        self._clock, self._clock_step = time.perf_counter(), step


def nan_message(what: str, step: int, ckpts: checkpoints.TrainCheckpoints) -> str:
    """`what` happened at `step`: the message names the last good checkpoint (after pending saves)."""
    ckpts.wait()
    good = ckpts.last_good_step
    where = f"step {good} ({ckpts.directory / str(good)})" if good is not None else "none yet"
    return (f"{what} at step {step}; stopping without saving this state. The last good "
            f"checkpoint is {where}; a restart resumes from it. Lower the learning rate or check the data")


def train_loop(cfg: RunConfig, trainer: Trainer, ckpts: checkpoints.TrainCheckpoints, state: TrainState,
               data_state: dict[str, Any] | None) -> LoopResult:
    """Steps from the state's step to `cfg.train_steps` (or `stop_after_steps`, or a preemption notice);
    returns the final state and the last logged metrics. Checkpoints, the prefetch thread and the metrics
    writer are closed on the way out."""
    start = int(state.step)
    shards = trainer.mesh.shape["data"] * trainer.mesh.shape["fsdp"]

    def to_device(local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        check_batch(local, cfg.num_microbatches, shards)
        return partitioning.global_batch(local, trainer.mesh)

    host0 = jax.process_index() == 0
    writer = MetricsWriter(cfg.model_dir, cfg.train_steps, start, write_files=host0,
                           show_bar=host0 and cfg.progress)
    logger = _Logger(cfg, trainer, ckpts, writer, start)
    logger.evaluator = PeriodicEval(cfg, trainer)
    batches = DevicePrefetcher(make_data(cfg, data_state), to_device, depth=cfg.prefetch_depth)
    try:
        with PreemptionWatcher() as preemption:
            state, signal_name = _steps(cfg, trainer, ckpts, state, start, batches, logger, preemption)
    finally:
        batches.close()
        try:
            ckpts.close()
        finally:
            writer.close()
    return LoopResult(state, logger.last, signal_name)


def _steps(cfg: RunConfig, trainer: Trainer, ckpts: checkpoints.TrainCheckpoints, state: TrainState,
           start: int, batches: DevicePrefetcher, logger: _Logger, preemption: PreemptionWatcher
           ) -> tuple[TrainState, str | None]:
    pending: _Pending | None = None
    last_step = cfg.train_steps if cfg.stop_after_steps is None else min(cfg.train_steps,
                                                                         cfg.stop_after_steps)
    for step in range(start + 1, last_step + 1):
        item = next(batches)
        state, metrics = trainer.train_step(state, item.batch, donate=not ckpts.should_save(step - 1, False))
        if pending is not None:  # the previous step's metrics, read while this step runs
            logger.log(pending)
            pending = None
        logger.writer.advance()
        if logger.evaluator is not None and logger.evaluator.due(step):
            logger.writer.write(step, logger.evaluator.run(step, state.params))
            logger.restart_clock(step)
        final = step == cfg.train_steps
        stop = preemption.reached(step)
        save = ckpts.should_save(step, final) or stop
        if step % cfg.log_every == 0 or final or save:
            pending = _Pending(step, metrics, item.num_tokens)
        if save:  # this step's metrics first: never save a state whose loss is not finite
            logger.log(pending)
            pending = None
            if not bool(_all_finite(state.params)):
                raise FloatingPointError(nan_message("parameters are not finite", step, ckpts))
            ckpts.save(step, state, item.position, wait=stop)
            logger.writer.flush()
            logger.restart_clock(step)
        if stop:
            print(f"{preemption.signal_name}: saved {ckpts.directory / str(step)}; the same command "
                  "resumes from it", file=sys.stderr, flush=True)
            return state, preemption.signal_name
    if pending is not None:
        logger.log(pending)
    return state, None


def _throughput(tokens: float, seconds: float, flops_per_token: float, peak_tflops: float
                ) -> dict[str, float]:
    tps = tokens / seconds
    return {"tokens_per_second": tps, "step_seconds": seconds,
            "tflops_per_device": tps * flops_per_token / jax.device_count() / 1e12,
            "mfu": compute.mfu(tps / jax.device_count(), flops_per_token, peak_tflops)}
