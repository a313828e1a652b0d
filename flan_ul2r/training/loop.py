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
(training/preemption.py) ends the run after the current step with a checkpoint of that step. A batch that
cannot be made (a data error: a corrupt record, a bad line) ends the run with that error, after saving the
steps trained since the last checkpoint. Every `eval_period` steps `PeriodicEval` writes validation loss
and eval-suite scores (training/periodic_eval.py). The first batch with a bidirectional prefix sets
`prefix_lm` in train_info.json (training/run_files.py).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r import partitioning
from flan_ul2r.errors import message, user_error
from flan_ul2r.training import checkpoints, compute, preemption
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.metrics import MetricsWriter
from flan_ul2r.training.periodic_eval import PeriodicEval
from flan_ul2r.training.prefetch import DevicePrefetcher
from flan_ul2r.training.run_files import batch_has_prefix, record_prefix_lm
from flan_ul2r.training.trainer import Trainer, TrainState, check_batch


class DataStoppedRun(ValueError):
    """The data failed after training had started; the message is the data error and the step saved."""


@dataclasses.dataclass
class LoopResult:
    state: TrainState
    metrics: dict[str, float]  # the last logged row
    preempted: str | None = None  # the signal that stopped the run early


def make_data(cfg: RunConfig, data_state: dict[str, Any] | None) -> Any:
    """This host's share of the batch stream, positioned at `data_state` (None = the start)."""
    from flan_ul2r.data.core.loader import make_train_iterator

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
        self.peak = compute.peak_tflops()
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
    host0 = jax.process_index() == 0
    prefix_seen = threading.Event()

    def to_device(local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        check_batch(local, cfg.num_microbatches, shards)
        if host0 and not prefix_seen.is_set() and batch_has_prefix(local):
            prefix_seen.set()
        return partitioning.global_batch(local, trainer.mesh)

    writer = MetricsWriter(cfg.model_dir, cfg.train_steps, start, write_files=host0,
                           show_bar=host0 and cfg.progress)
    batches = None
    try:
        with preemption.watching() as watcher:
            logger = _Logger(cfg, trainer, ckpts, writer, start)
            logger.evaluator = PeriodicEval(cfg, trainer)
            batches = DevicePrefetcher(make_data(cfg, data_state), to_device, depth=cfg.prefetch_depth)
            feed = _Feed(cfg, batches, prefix_seen)
            state, signal_name = _steps(cfg, trainer, ckpts, state, start, feed, logger, watcher)
    finally:
        if batches is not None:
            batches.close()
        try:
            ckpts.close()
        finally:
            writer.close()
    return LoopResult(state, logger.last, signal_name)


class _Feed:
    """The batches of the loop, with what they tell the run files: `prefix_lm` from the first batch that
    has a bidirectional prefix (training/run_files.py), and the position after the last batch taken."""

    def __init__(self, cfg: RunConfig, batches: DevicePrefetcher, prefix_seen: threading.Event):
        self.cfg, self.batches, self.prefix_seen = cfg, batches, prefix_seen
        self.position: dict[str, Any] | None = None
        self._recorded = False

    def next(self) -> Any:
        item = next(self.batches)
        self.position = item.position
        if not self._recorded and self.prefix_seen.is_set():
            record_prefix_lm(self.cfg.model_dir)
            self._recorded = True
        return item


def _steps(cfg: RunConfig, trainer: Trainer, ckpts: checkpoints.TrainCheckpoints, state: TrainState,
           start: int, feed: _Feed, logger: _Logger, watcher: preemption.PreemptionWatcher
           ) -> tuple[TrainState, str | None]:
    pending: _Pending | None = None
    last_step = cfg.train_steps if cfg.stop_after_steps is None else min(cfg.train_steps,
                                                                         cfg.stop_after_steps)
    saved = start
    for step in range(start + 1, last_step + 1):
        try:
            item = feed.next()
        except Exception as e:  # the data failed: keep the steps trained since the last save
            note = _save_before_failing(step - 1, saved, state, feed.position, pending, logger, ckpts)
            shown = user_error(e)
            if note and shown is not None:
                raise DataStoppedRun(f"{message(shown)}{note}") from e
            if note:
                print(f"the data failed after step {step - 1}{note}", file=sys.stderr, flush=True)
            raise
        watcher.begin_training()
        state, metrics = trainer.train_step(state, item.batch)
        if pending is not None:  # the previous step's metrics, read while this step runs
            logger.log(pending)
            pending = None
        logger.writer.advance()
        if logger.evaluator is not None and logger.evaluator.due(step):
            logger.writer.write(step, logger.evaluator.run(step, state.params))
            logger.restart_clock(step)
        final = step == cfg.train_steps
        stop = watcher.reached(step)
        save = ckpts.should_save(step, final) or stop
        if step % cfg.log_every == 0 or final or save:
            pending = _Pending(step, metrics, item.num_tokens)
        if save:  # this step's metrics first: never save a state whose loss is not finite
            _save(step, state, item.position, pending, logger, ckpts, wait=stop)
            pending, saved = None, step
        if stop:
            print(f"{watcher.signal_name}: saved {ckpts.directory / str(step)}; the same command "
                  "resumes from it", file=sys.stderr, flush=True)
            return state, watcher.signal_name
    if pending is not None:
        logger.log(pending)
    return state, None


def _save(step: int, state: TrainState, position: dict[str, Any], pending: _Pending | None, logger: _Logger,
          ckpts: checkpoints.TrainCheckpoints, wait: bool) -> None:
    """Logs the step's metrics (a non-finite loss raises), checks the parameters, saves."""
    if pending is not None:
        logger.log(pending)
    if not bool(_all_finite(state.params)):
        raise FloatingPointError(nan_message("parameters are not finite", step, ckpts))
    ckpts.save(step, state, position, wait=wait)
    logger.writer.flush()
    logger.restart_clock(step)


def _save_before_failing(step: int, saved: int, state: TrainState, position: dict[str, Any] | None,
                         pending: _Pending | None, logger: _Logger, ckpts: checkpoints.TrainCheckpoints
                         ) -> str:
    """The batch after `step` could not be made: saves `step` (unless it is saved already) with the data
    position after its batch; returns what to tell the user ("" when nothing was saved)."""
    if step <= saved or position is None:
        return ""
    _save(step, state, position, pending, logger, ckpts, wait=True)
    return (f"; saved step {step} first ({ckpts.directory / str(step)}): after fixing the data, the same "
            "command resumes from it")


def _throughput(tokens: float, seconds: float, flops_per_token: float, peak_tflops: float
                ) -> dict[str, float]:
    tps = tokens / seconds
    return {"tokens_per_second": tps, "step_seconds": seconds,
            "tflops_per_device": tps * flops_per_token / jax.device_count() / 1e12,
            "mfu": compute.mfu(tps / jax.device_count(), flops_per_token, peak_tflops)}
