"""Typed, frozen configs of a training run (t5x's `DatasetConfig` / `CheckpointConfig`, Levanter's
`TrainLmConfig`). Plain dataclasses: `flan_ul2r/main/train.py` binds them in gin, tests build them directly.

    RunConfig(model_dir=..., mixture_or_task_name="ul2r",
              task_feature_lengths={"inputs": 1024, "targets": 1024}, train_steps=20_000,
              model=ModelSpec(shape=preset("llama_1b")), mesh=MeshConfig(data=1, fsdp=-1, rules="fsdp"),
              optimizer=OptimizerConfig(learning_rate=1e-4, schedule="cosine"))
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import optax
from jax.sharding import Mesh

from flan_ul2r import partitioning
from flan_ul2r.errors import ConfigError
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training import optim

# How to run a model, not what it is: these may differ from the checkpoint's (e.g. bf16 compute).
RUNTIME_FIELDS = ("dtype", "remat_policy", "scan_layers", "attention_impl")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The model a run trains. `shape`: the architecture (gin/models/*.gin spell it out); None = the one
    stored with INITIAL_CHECKPOINT_PATH or the resumed MODEL_DIR. Runtime fields override either."""

    shape: ModelConfig | None = None
    dtype: str | None = None
    remat_policy: str | None = None
    scan_layers: bool | None = None
    attention_impl: str | None = None

    def resolve(self, stored: Mapping[str, Any] | None, where: Any = None) -> ModelConfig:
        """The config to build: the stored one (a checkpoint's) if any, else `shape`; a `shape` that
        disagrees with a stored config is an error naming the first differing field."""
        if stored is not None:
            cfg = ModelConfig.from_dict(dict(stored))
            if self.shape is not None:
                _check_same_shape(self.shape, cfg, where)
        elif self.shape is not None:
            cfg = self.shape
        else:
            raise ValueError("no model: include a model gin (gin/models/*.gin binds ModelSpec.shape) or set "
                             "INITIAL_CHECKPOINT_PATH to a checkpoint")
        runtime = {k: getattr(self, k) for k in RUNTIME_FIELDS if getattr(self, k) is not None}
        return cfg.replace(**runtime)


def _check_same_shape(shape: ModelConfig, stored: ModelConfig, where: Any) -> None:
    for field in dataclasses.fields(ModelConfig):
        if field.name in RUNTIME_FIELDS:
            continue
        want, have = getattr(shape, field.name), getattr(stored, field.name)
        if want != have:
            raise ValueError(f"model shape mismatch with {where}: {field.name}={want!r} in the model gin but "
                             f"{have!r} in the checkpoint's model_config.json (drop the model gin to train "
                             "the checkpoint's own shape)")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Mesh sizes over (data, fsdp, tensor) (-1 = fill with the remaining devices) and the logical-axis
    rules, a preset name of `partitioning.RULE_PRESETS` or explicit (logical, mesh axis) pairs."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    rules: str | Sequence[Sequence[Any]] = "data_parallel"

    def build(self, devices: Sequence[Any] | None = None) -> tuple[Mesh, partitioning.Rules]:
        mesh = partitioning.make_mesh(self.data, self.fsdp, self.tensor, devices)
        return mesh, partitioning.rules_for(self.rules)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """An optax optimizer and its schedule (`optim.optimizer` / `optim.schedule` say what each does)."""

    name: str = "adafactor"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    final_learning_rate: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float | None = 1.0

    def __post_init__(self) -> None:
        for name, value in (("LEARNING_RATE (OptimizerConfig.learning_rate)", self.learning_rate),
                            ("OptimizerConfig.final_learning_rate", self.final_learning_rate),
                            ("OptimizerConfig.weight_decay", self.weight_decay)):
            if not _is_number(value) or not 0 <= value < float("inf"):
                raise ConfigError(f"{name}={value!r}: must be a finite number >= 0 (a negative rate climbs "
                                  "the loss)")
        _check_whole("OptimizerConfig.warmup_steps", self.warmup_steps, 0)

    def build(self, train_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
        """(optimizer, learning-rate schedule); decaying schedules end at `train_steps`."""
        lr = optim.schedule(self.schedule, self.learning_rate, warmup_steps=self.warmup_steps,
                            decay_steps=train_steps, final_learning_rate=self.final_learning_rate)
        tx = optim.optimizer(self.name, lr, weight_decay=self.weight_decay, clip_norm=self.clip_norm)
        return tx, lr


FINAL_ONLY = "final"  # CHECKPOINT_PERIOD = "final": save at the end (and on preemption) only


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Save every `period` steps (and at the end), keep the newest `keep` (None = all), orbax async.
    `period = "final"` saves only at the end and on preemption."""

    period: int | str = 1000
    keep: int | None = 3
    async_save: bool = True

    def __post_init__(self) -> None:
        if self.period != FINAL_ONLY:
            _check_whole("CHECKPOINT_PERIOD (CheckpointConfig.period)", self.period, 1,
                         f' or "{FINAL_ONLY}" to save only at the end')
        if self.keep is not None:
            _check_whole("CheckpointConfig.keep", self.keep, 1, " or None to keep every checkpoint")

    @property
    def every(self) -> int:
        """Steps between saves; 0 = only the final one."""
        return 0 if self.period == FINAL_ONLY else int(self.period)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_whole(name: str, value: Any, low: int, alternative: str = "") -> None:
    """A whole number >= `low`, or a ConfigError naming the setting and the value it got."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name}={value!r}: must be a whole number >= {low}{alternative}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything `training.run.run` needs. `train_steps` counts from the start of the run, as in t5x;
    `model_dir` may be left "" where a caller names it (the pipeline gives each stage its directory);
    `stop_after_steps` ends the process early (tests: a killed run); `chunked_loss` computes the output
    projection + loss chunk by chunk (None = on CPU only, training/trainer.py); `prefetch_depth` batches
    wait on the devices ahead of the step (training/prefetch.py; 2 = double buffering); `progress` shows
    the progress bar (metrics files are written either way)."""

    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    train_steps: int
    model_dir: str = ""
    batch_size: int = 8
    initial_checkpoint_path: str | None = None
    seed: int = 0
    model: ModelSpec = ModelSpec()
    mesh: MeshConfig = MeshConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    z_loss: float = 1e-4
    num_microbatches: int = 1
    log_every: int = 1
    progress: bool = True
    chunked_loss: bool | None = None
    stop_after_steps: int | None = None
    # evaluation during training (training/periodic_eval.py): every `eval_period` steps (0 = off),
    # validation loss over `eval_batches` batches and, if set, the eval suite `eval_suite`
    eval_period: int = 0
    eval_suite: str | None = None
    eval_batches: int = 10
    eval_max_examples: int | None = 20
    # batches packed and put on the devices ahead of the step (training/prefetch.py)
    prefetch_depth: int = 2
    # resuming with other TASK_FEATURE_LENGTHS or BATCH_SIZE than the checkpoint's run is refused (the data
    # position would mean another stream) unless this is set (training/run_files.py)
    allow_data_change: bool = False

    def __post_init__(self) -> None:
        """Every setting checked before anything is written (names as the gin macros spell them)."""
        missing = {"targets"} - set(self.task_feature_lengths)
        if missing:
            raise ConfigError(f"TASK_FEATURE_LENGTHS={dict(self.task_feature_lengths)} lacks 'targets'")
        _check_whole("TRAIN_STEPS (RunConfig.train_steps)", self.train_steps, 1)
        _check_whole("BATCH_SIZE (RunConfig.batch_size)", self.batch_size, 1)
        for name in ("num_microbatches", "log_every", "prefetch_depth", "eval_batches"):
            _check_whole(f"RunConfig.{name}", getattr(self, name), 1)
        _check_whole("RunConfig.eval_period", self.eval_period, 0, " (0 = off)")
        if self.stop_after_steps is not None:
            _check_whole("RunConfig.stop_after_steps", self.stop_after_steps, 1)
        hosts = jax.process_count()
        if self.batch_size % hosts:
            raise ConfigError(f"BATCH_SIZE={self.batch_size} is not divisible by the {hosts} hosts "
                              "(processes) of this run: each host feeds an equal share")

    @property
    def sequence_length(self) -> int:
        return int(self.task_feature_lengths.get("inputs", 0)) + int(self.task_feature_lengths["targets"])
