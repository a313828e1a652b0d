"""The training loader: a deterministic, seekable stream of packed prefix-LM batches.

Draw k (k = 0, 1, 2, ...) picks a task of the mixture with a stateless categorical draw on seed
`[seed, k]` (rates = mixture rates). Each task has a cursor (examples it has given to this shard); the
draw reads task position `cursor * num_shards + shard_index` (so shards never share records) through the
task's stateless epoch permutation, and its example is `IndexedTask.example(position, task_seed)` =
`preprocess(fetch(perm(position)), [task_seed, position])`. So an example is a pure function of
(seed, task, cursor), each task is its own parallel tf.data stream, and the loader's whole position is
`{"draw": k, "cursors": {task: int}}`: resuming needs no replay (seqio issue #243 left this open).

Multi-host: shard s of n takes draws k = s, s + n, s + 2n, ...; every host packs its own batch.
Packing is greedy in draw order (`feature_converter.Packer`); an example that does not fit the batch
starts the next one, and `state()` points at it, so batches after a restore are identical.
The per-example TF work runs in a tf.data parallel map; packing is numpy.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from flan_ul2r.data.feature_converter import Packer
from flan_ul2r.data.indexed import IndexedTask, get_mixture_or_task

BLOCK = 64  # examples per tf.data -> Python transfer (one numpy conversion per block, not per example)
TASK_BLOCK = 256  # examples a task with `preprocess_batch` makes per call


def task_seed(seed: int, task_name: str) -> int:
    """A per-task seed (so tasks over the same corpus do not share epoch orders)."""
    return (int(seed) * 1_000_003 + zlib.crc32(task_name.encode())) % (2**62)


class TrainIterator:
    """Iterator of host-local numpy batches (docs/ARCHITECTURE.md section 1) with a JSON-able state()."""

    def __init__(self, name: str, task_feature_lengths: Mapping[str, int], batch_size: int, *, seed: int,
                 shard_index: int = 0, num_shards: int = 1, state: Mapping[str, Any] | None = None,
                 pack: bool = True, bos_id: int | None = None, split: str = "train", vocab: Any = None,
                 with_strings: bool = False):
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index={shard_index} must be in [0, num_shards={num_shards})")
        missing = {"inputs", "targets"} - set(task_feature_lengths)
        if missing:
            raise ValueError(f"task_feature_lengths={dict(task_feature_lengths)} lacks {sorted(missing)}")
        self.entries = get_mixture_or_task(name)
        self.tasks: list[IndexedTask] = [t for t, _ in self.entries]
        for t in self.tasks:
            t.check_split(split)
        self.name, self.seed, self.split, self.with_strings = name, int(seed), split, with_strings
        self.string_features = tuple(dict.fromkeys(f for t in self.tasks for f in t.string_features))
        self.shard_index, self.num_shards = shard_index, num_shards
        self.lengths = {"inputs": int(task_feature_lengths["inputs"]),
                        "targets": int(task_feature_lengths["targets"])}
        if bos_id is None:
            vocab = vocab if vocab is not None else self.tasks[0].vocabulary
            bos_id = int(getattr(vocab, "bos_id", 0) or 0)
        self.packer = Packer(batch_size, self.lengths["inputs"] + self.lengths["targets"], bos_id, pack)
        draw, cursors = self._parse_state(state)
        self._position = (draw, cursors)
        self._pending: dict[str, Any] | None = None
        self._next = (draw, cursors.copy())  # position of the next example the tf.data stream yields
        self._blocks = self._dataset(draw, cursors).as_numpy_iterator()
        self._block: list[dict[str, Any]] = []

    def _parse_state(self, state: Mapping[str, Any] | None) -> tuple[int, np.ndarray]:
        names = [t.name for t in self.tasks]
        if state is None:
            return self.shard_index, np.zeros(len(names), np.int64)
        try:
            draw, cursors = int(state["draw"]), dict(state["cursors"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"loader state {state!r}: expected "
                             "{'draw': int, 'cursors': {task: int}}") from e
        if set(cursors) != set(names) or draw % self.num_shards != self.shard_index:
            raise ValueError(f"loader state {dict(state)!r} does not belong to {self.name!r} shard "
                             f"{self.shard_index}/{self.num_shards} (tasks {names})")
        return draw, np.array([int(cursors[n]) for n in names], np.int64)

    def state(self) -> dict[str, Any]:
        """Position of the first example not yet in a returned batch: {"draw", "cursors"} (JSON-able)."""
        draw, cursors = self._position
        return {"draw": int(draw), "cursors": {t.name: int(c) for t, c in zip(self.tasks, cursors)}}

    def _dataset(self, draw: int, cursors: np.ndarray) -> tf.data.Dataset:
        rates = np.array([r for _, r in self.entries], np.float64)
        cum = tf.constant(np.cumsum(rates / rates.sum())[:-1], tf.float32)
        seed, num_tasks, shards, shard = self.seed, len(self.tasks), self.num_shards, self.shard_index
        lengths, split = self.lengths, self.split

        def choose(k: tf.Tensor) -> tf.Tensor:
            u = tf.random.stateless_uniform([], seed=tf.stack([tf.constant(seed, tf.int64), k]))
            return tf.reduce_sum(tf.cast(u >= cum, tf.int64))

        strings = self.string_features if self.with_strings else ()

        def task_stream(index: int, task: IndexedTask, cursor: int) -> tf.data.Dataset:
            """Task positions cursor * shards + shard, ...: IndexedTask.example with the task's seed."""
            tseed = task_seed(seed, task.name)

            def make(position: tf.Tensor) -> dict[str, tf.Tensor]:
                ex = task.example(position, tseed, split, lengths)
                out = {"inputs": tf.cast(ex["inputs"], tf.int32), "targets": tf.cast(ex["targets"], tf.int32),
                       "task_index": tf.constant(index, tf.int32)}
                out.update({f: tf.reshape(tf.cast(ex.get(f, ""), tf.string), []) for f in strings})
                return out

            positions = tf.data.Dataset.range(int(cursor) * shards + shard, 2**62, shards)
            if task.preprocess_batch is None:
                return positions.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            task.num_records(split, lengths)  # builds the task's tables now, outside the tf.data threads

            @tf.autograph.experimental.do_not_convert  # plain TF ops: no autograph tracing cost
            def make_block(block: tf.Tensor) -> dict[str, tf.Tensor]:
                ex = task.example_batch(block, tseed, split, lengths)
                size = tf.shape(block)[0]
                out = {"inputs": ex["inputs"], "targets": ex["targets"],
                       "task_index": tf.fill([size], tf.constant(index, tf.int32))}
                out.update({f: tf.reshape(ex.get(f, tf.fill([size], "")), [-1]) for f in strings})
                return out

            blocks = positions.batch(TASK_BLOCK).map(make_block, num_parallel_calls=tf.data.AUTOTUNE,
                                                deterministic=True)
            return blocks.unbatch()

        # Draw k -> task; the per-task cursors are counted on the Python side (`_advance`).
        streams = [task_stream(i, t, c) for i, (t, c) in enumerate(zip(self.tasks, cursors))]
        if num_tasks == 1:
            ds = streams[0]
        else:
            choice = tf.data.Dataset.range(draw, 2**62, shards).map(choose)
            ds = tf.data.Dataset.choose_from_datasets(streams, choice)
        options = tf.data.Options()
        options.deterministic = True
        return _in_blocks(ds, BLOCK).prefetch(4).with_options(options)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._pending is not None:
            ex, self._pending = self._pending, None
            self.packer.add(ex["inputs"], ex["targets"])
        while True:
            position, ex = self._advance()
            if not self.packer.add(ex["inputs"], ex["targets"]):
                self._pending = ex
                self._position = position
                return self.packer.emit()

    def _advance(self) -> tuple[tuple[int, np.ndarray], dict[str, Any]]:
        """Next example and its position (draw k, cursors before it); moves the position on."""
        if not self._block:
            self._block = _unblock(next(self._blocks))[::-1]
        ex = self._block.pop()
        position = self._next
        cursors = position[1].copy()
        cursors[ex["task_index"]] += 1
        self._next = (position[0] + self.num_shards, cursors)
        return position, ex

    def examples(self) -> Iterator[dict[str, Any]]:
        """The unpacked example stream in draw order (with string features if `with_strings`), each
        with its `draw` and `cursors` (the position before it)."""
        while True:
            (k, cursors), ex = self._advance()
            yield {**ex, "draw": k, "cursors": cursors}


def _in_blocks(ds: tf.data.Dataset, size: int) -> tf.data.Dataset:
    """Groups `size` consecutive examples into one element (flat token values + row lengths), so the
    Python side crosses the tf.data boundary once per block rather than once per example."""
    def flatten(block: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = dict(block)
        for key in ("inputs", "targets"):
            rows = block[key]  # dense when every example in the block has the same static length
            rows = rows if isinstance(rows, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(rows)
            out[key], out[key + "_lengths"] = rows.flat_values, rows.row_lengths()
        return out

    return ds.ragged_batch(size).map(flatten)


def _unblock(block: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The examples of one `_in_blocks` element, in order."""
    n = len(block["task_index"])
    rows = {}
    for key in ("inputs", "targets"):
        ends = np.cumsum(block[key + "_lengths"]).tolist()
        flat = block[key]
        rows[key] = [flat[a:b] for a, b in zip([0] + ends[:-1], ends)]
    scalars = [k for k in block if k not in ("inputs", "targets", "inputs_lengths", "targets_lengths")]
    return [{"inputs": rows["inputs"][i], "targets": rows["targets"][i], **{k: block[k][i] for k in scalars}}
            for i in range(n)]


def make_train_iterator(name: str, task_feature_lengths: Mapping[str, int], batch_size: int, *, seed: int,
                        shard_index: int = 0, num_shards: int = 1, state: Mapping[str, Any] | None = None,
                        pack: bool = True, bos_id: int | None = None, split: str = "train",
                        vocab: Any = None, with_strings: bool = False) -> TrainIterator:
    """Seekable iterator of packed numpy batches for task or mixture `name` (see module docstring).

    Batches are [batch_size, inputs + targets] with the docs/ARCHITECTURE.md section-1 features;
    `state=it.state()` from an earlier iterator continues with exactly the batches it would have given.
    Examples longer than the row are trimmed (targets keep their head, inputs their tail);
    UL2R examples never need it by construction (denoisers.raw_length). `with_strings` keeps the
    tasks' scalar string features in `.examples()` (for inspection; packed batches never carry them).
    """
    return TrainIterator(name, task_feature_lengths, batch_size, seed=seed, shard_index=shard_index,
                         num_shards=num_shards, state=state, pack=pack, bos_id=bos_id, split=split,
                         vocab=vocab, with_strings=with_strings)
