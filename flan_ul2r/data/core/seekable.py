"""Seekable tasks: seqio Tasks whose example i is a pure function of (seed, i): a loader can seek, not replay.

There is one registry, seqio's. A task is *seekable* when, besides being a `seqio.Task`, it offers three
callables (`is_seekable`), per split and sequence length (seqio's `{"inputs": N, "targets": M}`):

    num_records(split, sequence_length) -> int                     # records in the split (> 0)
    fetch(index: int64 tensor, split, sequence_length) -> dict     # record `index`, as TF ops
    preprocess(features, seed: int64[2] tensor, sequence_length) -> {"inputs", "targets", ...}

`SeekableTask` is the seqio.Task subclass that carries them (the built-in UL2R and Flan tasks); any other
seqio.Task subclass with the same three methods is seekable too. The training loader uses the seekable
path when every task of a mixture is seekable (`loader.py`), else reads every task through seqio's
`get_dataset` (the streaming path).

Epoch order: position i of a split is record `index_shuffle(i mod n, seed=[seed, i div n], n - 1)` (a
stateless permutation, new every epoch; `tf.random.experimental.index_shuffle`), and its example seed is
`[seed, i]` (`seekable_example`). An SeekableTask built with a seqio `source` and `preprocessors` (the
built-in UL2R tasks) answers `get_dataset` the ordinary seqio way, through them; one built without (Flan)
answers it with the seekable order. `register_seekable_task` / `register_seekable_mixture` are thin
adapters that add to seqio's TaskRegistry / MixtureRegistry.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

Example = dict[str, tf.Tensor]
SequenceLength = Mapping[str, int]
SEEKABLE_METHODS = ("num_records", "fetch", "preprocess")
_INDEX_SHUFFLE_PAD = 498247692  # the seed padding tf.random.experimental.index_shuffle adds


class TotalLengthTask(seqio.Task):
    """A seqio.Task whose examples are sized for `inputs + targets` together (prefix and targets are
    concatenated before packing, U-PaLM 2.2): `get_dataset` trims the *sum* (`trim_to_total`), not each
    feature to its own length as seqio does (which would cut an S-denoiser's long prefix)."""

    SIZED_BY_TOTAL = True  # registry.check_feature_lengths: an `inputs` length of 0 is fine here

    def get_dataset(self, sequence_length: SequenceLength | None = None, split: str = "train",
                    use_cached: bool = False, shuffle: bool = True, shuffle_buffer_size: int | None = None,
                    seed: int | None = None, shard_info: seqio.ShardInfo | None = None,
                    num_epochs: int | None = 1, trim_output_features: bool = True,
                    try_in_mem_cache: bool = True) -> tf.data.Dataset:
        if sequence_length is None:
            raise ValueError(f"task {self.name!r}: sequence_length is required (records depend on it)")
        if split not in self.splits:
            raise ValueError(f"task {self.name!r}: split={split!r} not in {list(self.splits)}")
        ds = self._untrimmed(sequence_length, split, use_cached, shuffle, shuffle_buffer_size, seed,
                             shard_info, num_epochs, try_in_mem_cache)
        if trim_output_features:
            total = int(sequence_length.get("inputs", 0)) + int(sequence_length["targets"])
            ds = ds.map(lambda ex: trim_to_total(ex, total))
        return ds

    def _untrimmed(self, sequence_length: SequenceLength, split: str, use_cached: bool, shuffle: bool,
                   shuffle_buffer_size: int | None, seed: int | None, shard_info: seqio.ShardInfo | None,
                   num_epochs: int | None, try_in_mem_cache: bool) -> tf.data.Dataset:
        return super().get_dataset(sequence_length, split, use_cached, shuffle, shuffle_buffer_size, seed,
                                   shard_info, num_epochs, trim_output_features=False,
                                   try_in_mem_cache=try_in_mem_cache)


class SeekableTask(TotalLengthTask):
    """A seqio.Task with random access (module docstring). Callables take Python split/sequence_length
    and TF index/seed tensors; `string_features` are the scalar string fields its examples carry (for
    inspection; packed batches drop them). `source` + `preprocessors`: the ordinary seqio pipeline that
    `get_dataset` runs (None: `get_dataset` yields the seekable order).

    preprocess_batch (optional): the same function on a batch - features of `fetch(indices)` for an
    int64[b] vector of indices, seeds int64[b, 2] - returning inputs/targets as int32 RaggedTensors
    [b, None] and string features [b]; loaders then make examples a block at a time
    (`seekable_example_batch`). Row k must equal `preprocess` of example k.
    """

    def __init__(self, name: str, vocabulary: Any, num_records: Callable[[str, SequenceLength], int],
                 fetch: Callable[[tf.Tensor, str, SequenceLength], Example],
                 preprocess: Callable[[Example, tf.Tensor, SequenceLength], Example],
                 splits: Sequence[str] = ("train",), string_features: Sequence[str] = ("denoiser",), *,
                 preprocess_batch: Callable[[Example, tf.Tensor, SequenceLength], Example] | None = None,
                 source: seqio.DataSource | None = None, preprocessors: Sequence[Callable] | None = None):
        self.vocabulary, self.string_features = vocabulary, tuple(string_features)
        self.num_records, self.fetch, self.preprocess = num_records, fetch, preprocess
        self.preprocess_batch = preprocess_batch
        self._has_pipeline = source is not None
        if source is None:
            def _no_source(split: str, shuffle_files: bool) -> tf.data.Dataset:
                raise RuntimeError(f"task {name!r} has no seqio source: read it through get_dataset")

            source = seqio.FunctionDataSource(_no_source, splits=list(splits))
        feature = lambda: seqio.Feature(vocabulary, add_eos=False, dtype=tf.int32)
        super().__init__(name, source=source, output_features={"inputs": feature(), "targets": feature()},
                         preprocessors=list(preprocessors or []))

    def _untrimmed(self, sequence_length: SequenceLength, split: str, use_cached: bool, shuffle: bool,
                   shuffle_buffer_size: int | None, seed: int | None, shard_info: seqio.ShardInfo | None,
                   num_epochs: int | None, try_in_mem_cache: bool) -> tf.data.Dataset:
        if self._has_pipeline:
            return super()._untrimmed(sequence_length, split, use_cached, shuffle, shuffle_buffer_size, seed,
                                      shard_info, num_epochs, try_in_mem_cache)
        index, count = (shard_info.index, shard_info.num_shards) if shard_info else (0, 1)
        return seekable_dataset(self, sequence_length, split, shuffle, seed, num_epochs, index, count)


def is_seekable(task: Any) -> bool:
    """Whether a task offers random access (num_records, fetch, preprocess)."""
    return all(callable(getattr(task, m, None)) for m in SEEKABLE_METHODS)


def record_index(position: tf.Tensor, seed: int, n: int, shuffle: bool = True) -> tf.Tensor:
    """Record at epoch `position` (int64 scalar or vector): stateless per-epoch permutation of [0, n).

    tf.random.experimental.index_shuffle's op, written out so that a vector of positions works too (its
    wrapper pads a [b, 2] seed on the wrong axis): the raw op's seed is the wrapper's constant followed
    by (seed, epoch), so scalar positions give exactly the wrapper's result.
    """
    position = tf.cast(position, tf.int64)
    if not shuffle:
        return position % n
    shape = tf.shape(position)
    epoch_seed = tf.stack([tf.fill(shape, tf.constant(seed, tf.int64)), position // n], axis=-1)
    pad = tf.fill(tf.concat([shape, [1]], 0), tf.constant(_INDEX_SHUFFLE_PAD, tf.int64))
    return tf.raw_ops.RandomIndexShuffle(index=position % n, seed=tf.concat([pad, epoch_seed], -1),
                                         max_index=tf.constant(n - 1, tf.int64), rounds=4)


def seekable_example(task: Any, position: tf.Tensor, seed: int, split: str, sequence_length: SequenceLength,
                     shuffle: bool = True) -> Example:
    """The example at `position` of the (seed, split) order: preprocess(fetch(perm(i)), [seed, i])."""
    n = task.num_records(split, sequence_length)
    if n < 1:
        raise ValueError(f"task {task.name!r}: split {split!r} has no records at {dict(sequence_length)}")
    index = record_index(position, seed, n, shuffle)
    ex_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(position, tf.int64)])
    return task.preprocess(task.fetch(index, split, sequence_length), ex_seed, sequence_length)


def seekable_example_batch(task: Any, positions: tf.Tensor, seed: int, split: str,
                           sequence_length: SequenceLength, shuffle: bool = True) -> Example:
    """`seekable_example` for an int64[b] vector of positions at once (needs `task.preprocess_batch`)."""
    n = task.num_records(split, sequence_length)
    indices = record_index(positions, seed, n, shuffle)
    seeds = tf.stack([tf.fill(tf.shape(positions), tf.constant(seed, tf.int64)),
                      tf.cast(positions, tf.int64)], axis=1)
    return task.preprocess_batch(task.fetch(indices, split, sequence_length), seeds, sequence_length)


def seekable_dataset(task: Any, sequence_length: SequenceLength, split: str = "train", shuffle: bool = True,
                     seed: int | None = 0, num_epochs: int | None = 1, shard_index: int = 0,
                     num_shards: int = 1) -> tf.data.Dataset:
    """tf.data of examples in epoch order (positions shard_index, shard_index + num_shards, ...)."""
    seed = 0 if seed is None else int(seed)
    n = task.num_records(split, sequence_length)
    total = 2**62 if num_epochs is None else n * num_epochs
    ds = tf.data.Dataset.range(shard_index, total, num_shards)
    return ds.map(lambda i: seekable_example(task, i, seed, split, sequence_length, shuffle),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def trim_to_total(example: Example, total: int) -> Example:
    """Fits inputs + targets into `total` tokens (prefix and targets are concatenated first, U-PaLM 2.2).

    Policy: targets keep their first `total` tokens; inputs keep their *last* tokens (the context nearest
    the targets), as many as fit after the targets. UL2R examples never need it (raw_length).
    """
    targets = example["targets"][:total]
    keep = total - tf.size(targets)
    inputs = example.get("inputs", tf.zeros([0], targets.dtype))
    inputs = inputs[tf.maximum(tf.size(inputs) - keep, 0):]
    return {**example, "inputs": inputs, "targets": targets}


def register_seekable_task(task: seqio.Task) -> seqio.Task:
    """Adds `task` to seqio's TaskRegistry, replacing a same-named one."""
    seqio.TaskRegistry.remove(task.name)
    seqio.TaskRegistry.add_provider(task.name, task)
    return task


def register_seekable_mixture(name: str, tasks: Sequence[tuple[str, float]]) -> seqio.Mixture:
    """Registers seqio Mixture `name` over registered tasks with rates, replacing a same-named one."""
    if not tasks:
        raise ValueError(f"mixture {name!r}: no tasks")
    known = seqio.TaskRegistry.names() | seqio.MixtureRegistry.names()
    for task_name, rate in tasks:
        if task_name not in known:
            raise ValueError(f"mixture {name!r}: unknown task {task_name!r}")
        if not rate >= 0:
            raise ValueError(f"mixture {name!r}: rate for {task_name!r} is {rate!r}, must be >= 0")
    if not sum(r for _, r in tasks) > 0:
        raise ValueError(f"mixture {name!r}: rates sum to 0")
    seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, [(t, float(r)) for t, r in tasks])


def get_mixture_or_task(name: str) -> list[tuple[Any, float]]:
    """[(task, normalized rate)] from seqio's registry (`registry.leaf_tasks`)."""
    from flan_ul2r.data.core.registry import leaf_tasks

    return leaf_tasks(name)
