"""The training loop: batches in, steps, metrics out (every `log_every` steps), checkpoints on period.

Metrics per logged step (metrics.jsonl, TensorBoard, the progress bar): the step's loss terms, accuracy,
gradient norm and learning rate, plus tokens/s, step time, TFLOP/s per device and MFU against the
device's peak (training/compute.py). A non-finite loss stops the run without saving that state.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from flan_ul2r.training import checkpoints, compute, partitioning
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.metrics import MetricsWriter
from flan_ul2r.training.periodic_eval import PeriodicEval
from flan_ul2r.training.trainer import Trainer, TrainState, check_batch


def make_data(cfg: RunConfig, data_state: dict[str, Any] | None) -> Any:
    """This host's share of the batch stream, positioned at `data_state` (None = the start)."""
    from flan_ul2r.data.loader import make_train_iterator

    hosts = jax.process_count()
    return make_train_iterator(cfg.mixture_or_task_name, cfg.task_feature_lengths, cfg.batch_size // hosts,
                               seed=cfg.seed, shard_index=jax.process_index(), num_shards=hosts,
                               state=data_state)


def train_loop(cfg: RunConfig, trainer: Trainer, ckpts: checkpoints.TrainCheckpoints, state: TrainState,
               data_state: dict[str, Any] | None) -> tuple[TrainState, dict[str, float]]:
    """Steps from the state's step to `cfg.train_steps` (or `stop_after_steps`); returns the final state
    and the last logged metrics. Checkpoints and the metrics writer are closed on the way out."""
    data = make_data(cfg, data_state)
    start = int(state.step)
    flops_per_token = compute.train_flops_per_token(trainer.cfg, cfg.sequence_length)
    peak = compute.device_peak_tflops() or compute.measure_matmul_peak()
    writer = MetricsWriter(Path(cfg.model_dir), cfg.train_steps, start,
                           enabled=jax.process_index() == 0 and cfg.progress)
    shards = trainer.mesh.shape["data"] * trainer.mesh.shape["fsdp"]
    evaluator = PeriodicEval(cfg, trainer)
    last: dict[str, float] = {}
    try:
        for step in range(start + 1, cfg.train_steps + 1):
            t0 = time.perf_counter()
            local = next(data)
            check_batch(local, cfg.num_microbatches, shards)
            state, metrics = trainer.train_step(state, partitioning.global_batch(local, trainer.mesh),
                                                donate=not ckpts.should_save(step - 1, False))
            final = step == cfg.train_steps
            if step % cfg.log_every == 0 or final or ckpts.should_save(step, final):
                last = _step_metrics(metrics, step, ckpts)
                tokens = float(np.prod(local["decoder_input_tokens"].shape)) * jax.process_count()
                last.update(_throughput(tokens, time.perf_counter() - t0, flops_per_token, peak))
                writer.write(step, last)
            if evaluator.due(step):
                writer.write(step, evaluator.run(step, state.params))
            writer.advance()
            if ckpts.should_save(step, final):
                ckpts.save(step, state, data.state())
            if cfg.stop_after_steps is not None and step >= cfg.stop_after_steps:
                break
    finally:
        ckpts.close()
        writer.close()
    return state, last


def _step_metrics(metrics: dict[str, Any], step: int, ckpts: checkpoints.TrainCheckpoints
                  ) -> dict[str, float]:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not math.isfinite(values["loss"]):
        raise FloatingPointError(f"loss is {values['loss']} at step {step}; stopping without saving this "
                                 f"state (last checkpoint: {ckpts.latest_step()}); lower the learning rate, "
                                 "check the data")
    return values


def _throughput(tokens: float, seconds: float, flops_per_token: float, peak_tflops: float
                ) -> dict[str, float]:
    tps = tokens / seconds
    return {"tokens_per_second": tps, "step_seconds": seconds,
            "tflops_per_device": tps * flops_per_token / jax.device_count() / 1e12,
            "mfu": compute.mfu(tps / jax.device_count(), flops_per_token, peak_tflops)}
