"""Seekable tasks: example i of a task is a pure function of (seed, i), so a loader can seek, not replay.

An `IndexedTask` exposes, per split and sequence length (seqio's `{"inputs": N, "targets": M}`):
`num_records(split, sequence_length) -> int`, `fetch(index, split, sequence_length) -> features` and
`preprocess(features, seed, sequence_length) -> example` as TF ops, plus its vocabulary. The example is
`{"inputs": int32[None], "targets": int32[None]}` and optional scalar string fields (`denoiser`, `task`,
`style`) for inspection (docs/ARCHITECTURE.md sections 1 and 3).

Epoch order: position i of a split is record `index_shuffle(i mod n, seed=[seed, i div n], n - 1)` (a
stateless permutation, new every epoch; `tf.random.experimental.index_shuffle`), and its example seed is
`[seed, i]`. Registering an IndexedTask also registers a seqio Task of the same name whose
`get_dataset(sequence_length, split, shuffle, seed)` yields exactly these examples, and
`register_indexed_mixture` registers a seqio Mixture with the same rates.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

Example = dict[str, tf.Tensor]
SequenceLength = Mapping[str, int]

_TASKS: dict[str, IndexedTask] = {}
_INDEX_SHUFFLE_PAD = 498247692  # the seed padding tf.random.experimental.index_shuffle adds
_MIXTURES: dict[str, tuple[tuple[str, float], ...]] = {}


@dataclasses.dataclass(frozen=True)
class IndexedTask:
    """A random-access task. Callables take Python split/sequence_length and TF index/seed tensors.

    num_records(split, sequence_length) -> int: records in the split (> 0).
    fetch(index, split, sequence_length) -> dict of tensors: record `index` (int64 scalar tensor).
    preprocess(features, seed, sequence_length) -> example: `seed` is a shape-[2] int64 stateless seed.
    string_features: the scalar string fields the example carries (for inspection; dropped by loaders).
    preprocess_batch (optional): the same function on a batch - features of `fetch(indices)` for an int64[b]
      vector of indices, seeds int64[b, 2] - returning inputs/targets as int32 RaggedTensors [b, None] and
      string features [b]; loaders then make examples a block at a time (`example_batch`). Row k must
      equal `preprocess` of example k.
    """

    name: str
    vocabulary: Any
    num_records: Callable[[str, SequenceLength], int]
    fetch: Callable[[tf.Tensor, str, SequenceLength], Example]
    preprocess: Callable[[Example, tf.Tensor, SequenceLength], Example]
    splits: tuple[str, ...] = ("train",)
    string_features: tuple[str, ...] = ("denoiser",)
    preprocess_batch: Callable[[Example, tf.Tensor, SequenceLength], Example] | None = None

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"task {self.name!r}: split={split!r} not in {list(self.splits)}")

    def record_index(self, position: tf.Tensor, seed: int, n: int, shuffle: bool = True) -> tf.Tensor:
        """Record at epoch `position` (int64): stateless per-epoch permutation of [0, n)."""
        position = tf.cast(position, tf.int64)
        if not shuffle:
            return position % n
        # tf.random.experimental.index_shuffle's seed [2] (scalar positions), written out so that a vector
        # of positions works too (its wrapper pads a [b, 2] seed on the wrong axis): the raw op's seed is
        # the wrapper's constant followed by (seed, epoch).
        shape = tf.shape(position)
        epoch_seed = tf.stack([tf.fill(shape, tf.constant(seed, tf.int64)), position // n], axis=-1)
        pad = tf.fill(tf.concat([shape, [1]], 0), tf.constant(_INDEX_SHUFFLE_PAD, tf.int64))
        return tf.raw_ops.RandomIndexShuffle(index=position % n, seed=tf.concat([pad, epoch_seed], -1),
                                             max_index=tf.constant(n - 1, tf.int64), rounds=4)

    def example(self, position: tf.Tensor, seed: int, split: str, sequence_length: SequenceLength,
                shuffle: bool = True) -> Example:
        """The example at `position` of the (seed, split) order: preprocess(fetch(perm(i)), [seed, i])."""
        n = self.num_records(split, sequence_length)
        index = self.record_index(position, seed, n, shuffle)
        ex_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(position, tf.int64)])
        return self.preprocess(self.fetch(index, split, sequence_length), ex_seed, sequence_length)

    def example_batch(self, positions: tf.Tensor, seed: int, split: str, sequence_length: SequenceLength,
                      shuffle: bool = True) -> Example:
        """`example` for an int64[b] vector of positions at once (needs `preprocess_batch`)."""
        n = self.num_records(split, sequence_length)
        indices = self.record_index(positions, seed, n, shuffle)
        seeds = tf.stack([tf.fill(tf.shape(positions), tf.constant(seed, tf.int64)),
                          tf.cast(positions, tf.int64)], axis=1)
        return self.preprocess_batch(self.fetch(indices, split, sequence_length), seeds, sequence_length)

    def get_dataset(self, sequence_length: SequenceLength, split: str = "train", shuffle: bool = True,
                    seed: int | None = 0, num_epochs: int | None = 1, shard_index: int = 0,
                    num_shards: int = 1) -> tf.data.Dataset:
        """tf.data of examples in epoch order (positions shard_index, shard_index + num_shards, ...)."""
        self.check_split(split)
        seed = 0 if seed is None else int(seed)
        n = self.num_records(split, sequence_length)
        total = None if num_epochs is None else n * num_epochs
        ds = tf.data.Dataset.range(shard_index, total if total is not None else 2**62, num_shards)
        ds = ds.map(lambda i: self.example(i, seed, split, sequence_length, shuffle),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds


def trim_to_total(example: Example, total: int) -> Example:
    """Fits inputs + targets into `total` tokens (prefix and targets are concatenated first, U-PaLM 2.2).

    Policy: targets keep their first `total` tokens; inputs keep their *last* tokens (the context nearest
    the targets), as many as fit after the targets. UL2R examples never need it (raw_length).
    """
    targets = example["targets"][:total]
    keep = total - tf.size(targets)
    inputs = example["inputs"]
    inputs = inputs[tf.maximum(tf.size(inputs) - keep, 0):]
    return {**example, "inputs": inputs, "targets": targets}


def register_indexed_task(task: IndexedTask, *, seqio_task: bool = True) -> IndexedTask:
    """Adds `task` to the registry (replacing a same-named one) and to seqio's TaskRegistry."""
    _TASKS[task.name] = task
    if seqio_task:
        seqio.TaskRegistry.remove(task.name)
        seqio.TaskRegistry.add_provider(task.name, _SeqioIndexedTask(task))
    return task


def register_indexed_mixture(name: str, tasks: Sequence[tuple[str, float]]) -> None:
    """Registers mixture `name` over already registered tasks with rates (here and as a seqio Mixture)."""
    if not tasks:
        raise ValueError(f"mixture {name!r}: no tasks")
    for task_name, rate in tasks:
        if task_name not in _TASKS:
            raise ValueError(f"mixture {name!r}: unknown task {task_name!r}; registered: {sorted(_TASKS)}")
        if not rate >= 0:
            raise ValueError(f"mixture {name!r}: rate for {task_name!r} is {rate!r}, must be >= 0")
    if not sum(r for _, r in tasks) > 0:
        raise ValueError(f"mixture {name!r}: rates sum to 0")
    _MIXTURES[name] = tuple((t, float(r)) for t, r in tasks)
    seqio.MixtureRegistry.remove(name)
    seqio.MixtureRegistry.add(name, list(_MIXTURES[name]))


def get_indexed_task(name: str) -> IndexedTask:
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; registered indexed tasks: {sorted(_TASKS)}")
    return _TASKS[name]


def get_mixture_or_task(name: str) -> list[tuple[IndexedTask, float]]:
    """[(task, normalized rate)] for a mixture, or [(task, 1.0)] for a task; clear error otherwise."""
    if name in _MIXTURES:
        entries = _MIXTURES[name]
        total = sum(r for _, r in entries)
        return [(_TASKS[t], r / total) for t, r in entries if r > 0]
    if name in _TASKS:
        return [(_TASKS[name], 1.0)]
    raise ValueError(f"unknown task or mixture {name!r}; registered: "
                     f"{sorted(set(_TASKS) | set(_MIXTURES))}")


def registered_names() -> list[str]:
    return sorted(set(_TASKS) | set(_MIXTURES))


class _SeqioIndexedTask(seqio.Task):
    """A seqio.Task whose get_dataset is the IndexedTask's seekable order (no shuffle buffer needed)."""

    def __init__(self, task: IndexedTask):
        def _unused_source(split: str, shuffle_files: bool) -> tf.data.Dataset:
            raise RuntimeError(f"task {task.name!r}: read it through get_dataset")

        feature = lambda: seqio.Feature(task.vocabulary, add_eos=False, dtype=tf.int32)
        super().__init__(
            task.name,
            source=seqio.FunctionDataSource(_unused_source, splits=list(task.splits)),
            output_features={"inputs": feature(), "targets": feature()},
            preprocessors=[], shuffle_buffer_size=None)
        self._indexed = task

    def get_dataset(self, sequence_length: SequenceLength | None = None, split: str = "train",
                    use_cached: bool = False, shuffle: bool = True, shuffle_buffer_size: int | None = None,
                    seed: int | None = None, shard_info: seqio.ShardInfo | None = None,
                    num_epochs: int | None = 1, trim_output_features: bool = True,
                    try_in_mem_cache: bool = True) -> tf.data.Dataset:
        if sequence_length is None:
            raise ValueError(f"task {self.name!r}: sequence_length is required (records depend on it)")
        index, count = (shard_info.index, shard_info.num_shards) if shard_info else (0, 1)
        ds = self._indexed.get_dataset(sequence_length, split, shuffle, seed, num_epochs, index, count)
        if trim_output_features:
            total = int(sequence_length["inputs"]) + int(sequence_length["targets"])
            ds = ds.map(lambda ex: trim_to_total(ex, total))
        return ds
