"""Per-task example streams for the training loader: seekable (by position) or seqio's (by counted skip).

Both start at a host-local `cursor` (examples this host already took from the task) and yield dicts with
`inputs`, `targets` (int32), `task_index`, the requested scalar string features and, on the seqio path,
a `fingerprint` of the example (int64, farmhash of its tokens) for the resume check.

- `seekable_stream`: task positions `cursor * num_shards + shard, ... ` through `seekable.seekable_example`
  with the task's seed: O(1) to start at any cursor. A task with `preprocess_batch` makes `TASK_BLOCK`
  examples per call (`seekable.seekable_example_batch`), the same examples.
- `seqio_stream`: `task.get_dataset(sequence_length, split, shuffle=True, seed=task seed,
  shard_info=ShardInfo(shard, num_shards), num_epochs=None, trim_output_features=False)` (seqio's own
  pipeline: any DataSource, any preprocessors), then `.skip(cursor)`. Deterministic given the seed, so
  the skip lands exactly where the interrupted run was; its cost is reading and preprocessing `cursor`
  examples again (time linear in the position, nothing extra in the checkpoint). With `check`, the
  example just before the cursor is regenerated and compared with the fingerprint stored at save time:
  a task that is not deterministic given its seed (an unseeded random op, an unseeded shuffle) fails
  the resume with an error naming it instead of silently training on other data.
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

from flan_ul2r.data.core.seekable import seekable_example, seekable_example_batch

TASK_BLOCK = 256  # examples a task with `preprocess_batch` makes per call


def task_seed(seed: int, task_name: str) -> int:
    """A per-task seed (so tasks over the same corpus do not share orders)."""
    return (int(seed) * 1_000_003 + zlib.crc32(task_name.encode())) % (2**62)


def fingerprint(inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """int64 hash of an example's tokens (the resume check)."""
    joined = tf.concat([tf.cast(inputs, tf.int32), [-1], tf.cast(targets, tf.int32)], 0)
    return tf.strings.to_hash_bucket_fast(tf.io.serialize_tensor(joined), 2**62)


def _normalize(ex: Mapping[str, tf.Tensor], index: int, name: str, strings: Sequence[str],
               with_fingerprint: bool) -> dict[str, tf.Tensor]:
    targets = tf.cast(tf.reshape(ex["targets"], [-1]), tf.int32)
    inputs = tf.cast(tf.reshape(ex["inputs"], [-1]), tf.int32) if "inputs" in ex else tf.zeros([0], tf.int32)
    out = {"inputs": inputs, "targets": targets, "task_index": tf.constant(index, tf.int32)}
    for f in strings:
        value = ex.get(f, tf.constant(name if f == "task" else ""))
        out[f] = tf.reshape(tf.cast(value, tf.string), [])
    if with_fingerprint:
        out["fingerprint"] = fingerprint(inputs, targets)
    return out


def scalar_strings(spec: Mapping[str, tf.TensorSpec]) -> list[str]:
    """The scalar string features of an element spec."""
    return [k for k, s in spec.items() if isinstance(s, tf.TensorSpec) and s.dtype == tf.string
            and s.shape.rank == 0]


def seekable_stream(task: Any, cursor: int, *, seed: int, split: str, lengths: Mapping[str, int],
                    shard: int, num_shards: int) -> tf.data.Dataset:
    tseed = task_seed(seed, task.name)
    positions = tf.data.Dataset.range(int(cursor) * num_shards + shard, 2**62, num_shards)
    if getattr(task, "preprocess_batch", None) is None:
        return positions.map(lambda p: seekable_example(task, p, tseed, split, lengths),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    task.num_records(split, lengths)  # builds the task's tables now, outside the tf.data threads

    @tf.autograph.experimental.do_not_convert  # plain TF ops: no autograph tracing cost
    def block(ps: tf.Tensor) -> dict[str, tf.Tensor]:
        ex = seekable_example_batch(task, ps, tseed, split, lengths)
        size = tf.shape(ps)[0]
        return {k: (v if isinstance(v, tf.RaggedTensor) or v.shape.rank else tf.fill([size], v))
                for k, v in ex.items()}

    blocks = positions.batch(TASK_BLOCK).map(block, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return blocks.unbatch()


def seqio_stream(task: seqio.Task, cursor: int, *, seed: int, split: str, lengths: Mapping[str, int],
                 shard: int, num_shards: int) -> tf.data.Dataset:
    shard_info = seqio.ShardInfo(shard, num_shards) if num_shards > 1 else None
    ds = task.get_dataset(sequence_length=dict(lengths), split=split, use_cached=False,
                          shuffle=task.shuffle_buffer_size is not None, seed=task_seed(seed, task.name),
                          shard_info=shard_info, num_epochs=None, trim_output_features=False)
    return ds.skip(int(cursor)) if cursor else ds


def normalized(ds: tf.data.Dataset, index: int, name: str, strings: Sequence[str],
               with_fingerprint: bool) -> tf.data.Dataset:
    return ds.map(lambda ex: _normalize(ex, index, name, strings, with_fingerprint),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


RESUME_CHECK = "resume check failed for task number"


def resume_error(name: str) -> str:
    return (f"resume check failed for task {name!r}: the example before the checkpoint's position came "
            "out different (the task is not deterministic given its seed: an unseeded random op or "
            "shuffle, or its data changed), so the run cannot resume exactly")


def checked_resume(ds: tf.data.Dataset, stored: int, index: int) -> tf.data.Dataset:
    """`ds` started one example early: verifies that example's fingerprint equals `stored`, drops it.
    A mismatch raises InvalidArgumentError with `RESUME_CHECK` and the task's index."""
    message = f"{RESUME_CHECK} <{index}>"

    def keep(i: tf.Tensor, ex: Mapping[str, tf.Tensor]) -> tf.Tensor:
        ok = tf.logical_or(i > 0, tf.equal(ex["fingerprint"], tf.constant(int(stored), tf.int64)))
        with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
            return tf.identity(i > 0)

    return ds.enumerate().filter(keep).map(lambda i, ex: ex)
