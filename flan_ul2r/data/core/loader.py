"""The training loader: a deterministic, resumable stream of packed prefix-LM batches from any seqio task.

`MIXTURE_OR_TASK_NAME` names a seqio Task or Mixture (`registry.leaf_tasks`: seqio's registry is the
only one). Draw k (k = 0, 1, 2, ...) picks a task of the mixture with a stateless categorical draw on
seed `[seed, k]` (rates = seqio's mixing rates); each task has a cursor (examples it has given to this
shard), and the drawn task's next example comes from its own tf.data stream (`core/example_streams.py`):
- seekable path, when every task is seekable (`seekable.is_seekable`, e.g. the built-in UL2R and Flan
  tasks): example = the task's record at position `cursor * num_shards + shard_index` of its stateless
  epoch permutation. Restarting at any cursor is O(1) (seqio issue #243 left this open).
- seqio path, otherwise (any seqio.Task: any DataSource, any preprocessors): the task's own
  `get_dataset(seed=task seed, shard_info=this host, num_epochs=None)`, skipped to the cursor on resume.
  Exact as long as the task is deterministic given its seed (checked on resume); the skip re-reads and
  re-preprocesses `cursor` examples per task (seconds per resume grow with the position; measured by
  `benchmarks/data_pipeline.py`); the checkpoint holds only a few integers either way.
The loader's whole position is `{"mode", "draw", "cursors": {task: int}}` (+ `"fingerprints"` on the
seqio path): JSON, saved with each checkpoint (`training/checkpoints.py`).

Multi-host: shard s of n takes draws k = s, s + n, s + 2n, ...; every host packs its own batch.
Packing is greedy in draw order (`feature_converter.Packer`); an example that does not fit the batch
starts the next one, and `state()` points at it, so batches after a restore are identical.
Examples longer than the row are trimmed with the project's one policy (targets keep their head, inputs
their tail; seqio's per-feature trimming is not applied: prefix and targets are concatenated first).
An error inside tf.data (a bad line, a damaged TFRecord, a failing preprocessor) is raised as a
`data_errors.DataError` naming the task and the file, line or record.

`close()` lets go of the tf.data iterator; every iterator still open when Python exits is closed by an
`atexit` hook. Freed later, during interpreter finalization, a pipeline with Python code in it (the Flan
renderers, a user's `tf.py_function`) hangs the process for good: the iterator's destructor waits for its
parallel-map calls, and they wait for a GIL that threads can no longer take.
"""
from __future__ import annotations

import atexit
import re
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from flan_ul2r.data.core import example_streams as streams
from flan_ul2r.data.core import tfdata_errors as data_errors
from flan_ul2r.data.core.feature_converter import Packer
from flan_ul2r.data.core.registry import check_tasks, leaf_tasks
from flan_ul2r.data.core.seekable import is_seekable

task_seed = streams.task_seed  # the per-task seed (kept here for callers)
BLOCK = 64  # examples per tf.data -> Python transfer (one numpy conversion per block, not per example)


class TrainIterator:
    """Iterator of host-local numpy batches (docs/ARCHITECTURE.md section 1) with a JSON-able state()."""

    def __init__(self, name: str, task_feature_lengths: Mapping[str, int], batch_size: int, *, seed: int,
                 shard_index: int = 0, num_shards: int = 1, state: Mapping[str, Any] | None = None,
                 pack: bool = True, bos_id: int | None = None, split: str = "train", vocab: Any = None,
                 with_strings: bool = False):
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index={shard_index} must be in [0, num_shards={num_shards})")
        if "targets" not in task_feature_lengths:
            raise ValueError(f"task_feature_lengths={dict(task_feature_lengths)} lacks 'targets'")
        self.entries = leaf_tasks(name)
        self.tasks = [t for t, _ in self.entries]
        vocabulary = check_tasks(name, self.tasks, split)
        self.mode = "seekable" if all(is_seekable(t) for t in self.tasks) else "seqio"
        self.name, self.seed, self.split, self.with_strings = name, int(seed), split, with_strings
        self.shard_index, self.num_shards = shard_index, num_shards
        self.lengths = {"inputs": int(task_feature_lengths.get("inputs", 0) or 0),
                        "targets": int(task_feature_lengths["targets"])}
        if bos_id is None:
            bos_id = int(getattr(vocab if vocab is not None else vocabulary, "bos_id", 0) or 0)
        self.packer = Packer(batch_size, self.lengths["inputs"] + self.lengths["targets"], bos_id, pack)
        draw, cursors, prints = self._parse_state(state)
        self._position = (draw, cursors, prints)
        self._pending: dict[str, Any] | None = None
        self._next = (draw, cursors.copy(), prints.copy())  # position of the next example of the stream
        self._blocks: Iterator[Any] | None = self._dataset(draw, cursors, prints).as_numpy_iterator()
        self._block: list[dict[str, Any]] = []
        _OPEN.add(self)

    def close(self) -> None:
        """Frees the tf.data pipeline now (module docstring); the iterator gives no more batches."""
        self._blocks, self._block, self._pending = None, [], None

    # --- state ------------------------------------------------------------------------------------------
    def _parse_state(self, state: Mapping[str, Any] | None) -> tuple[int, np.ndarray, np.ndarray]:
        names = [t.name for t in self.tasks]
        prints = np.zeros(len(names), np.int64)
        if state is None:
            return self.shard_index, np.zeros(len(names), np.int64), prints
        try:
            draw, cursors = int(state["draw"]), dict(state["cursors"])
            mode, stored = state.get("mode", "seekable"), dict(state.get("fingerprints", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"loader state {state!r}: expected "
                             "{'draw': int, 'cursors': {task: int}, 'mode': str}") from e
        if set(cursors) != set(names) or draw % self.num_shards != self.shard_index:
            raise ValueError(f"loader state {dict(state)!r} does not belong to {self.name!r} shard "
                             f"{self.shard_index}/{self.num_shards} (tasks {names})")
        if mode != self.mode:
            raise ValueError(f"loader state of {self.name!r} was saved by the {mode!r} path, but its tasks "
                             f"now use the {self.mode!r} path (a task gained or lost random access)")
        for i, n in enumerate(names):
            prints[i] = int(stored.get(n, 0))
        return draw, np.array([int(cursors[n]) for n in names], np.int64), prints

    def state(self) -> dict[str, Any]:
        """Position of the first example not yet in a returned batch (JSON-able; module docstring)."""
        draw, cursors, prints = self._position
        out: dict[str, Any] = {"mode": self.mode, "draw": int(draw),
                               "cursors": {t.name: int(c) for t, c in zip(self.tasks, cursors)}}
        if self.mode == "seqio":
            out["fingerprints"] = {t.name: int(p) for t, p, c in zip(self.tasks, prints, cursors) if c > 0}
        return out

    # --- the tf.data pipeline ---------------------------------------------------------------------------
    def _task_dataset(self, index: int, task: Any, cursor: int, stored: int) -> tf.data.Dataset:
        common = dict(seed=self.seed, split=self.split, lengths=self.lengths, shard=self.shard_index,
                      num_shards=self.num_shards)
        if self.mode == "seekable":
            return streams.seekable_stream(task, cursor, **common)
        check = cursor > 0 and stored != 0
        return streams.seqio_stream(task, cursor - 1 if check else cursor, **common)

    def _dataset(self, draw: int, cursors: np.ndarray, prints: np.ndarray) -> tf.data.Dataset:
        raw = [self._task_dataset(i, t, int(c), int(p))
               for i, (t, c, p) in enumerate(zip(self.tasks, cursors, prints))]
        strings: list[str] = []
        if self.with_strings:
            found = [f for ds in raw for f in streams.scalar_strings(ds.element_spec)]
            strings = list(dict.fromkeys(["task", *found]))
        fp = self.mode == "seqio"
        per_task = []
        for i, (task, ds, c, p) in enumerate(zip(self.tasks, raw, cursors, prints)):
            ds = streams.normalized(ds, i, task.name, strings, fp)
            per_task.append(streams.checked_resume(ds, int(p), i) if fp and c > 0 and p else ds)
        if len(per_task) == 1:
            ds = per_task[0]
        else:
            rates = np.array([r for _, r in self.entries], np.float64)
            cum = tf.constant(np.cumsum(rates / rates.sum())[:-1], tf.float32)
            seed = self.seed

            def choose(k: tf.Tensor) -> tf.Tensor:
                u = tf.random.stateless_uniform([], seed=tf.stack([tf.constant(seed, tf.int64), k]))
                return tf.reduce_sum(tf.cast(u >= cum, tf.int64))

            choice = tf.data.Dataset.range(draw, 2**62, self.num_shards).map(choose)
            ds = tf.data.Dataset.choose_from_datasets(per_task, choice)
        options = tf.data.Options()
        options.deterministic = True
        return _in_blocks(ds, BLOCK).prefetch(4).with_options(options)

    # --- iteration --------------------------------------------------------------------------------------
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

    def _advance(self) -> tuple[tuple[int, np.ndarray, np.ndarray], dict[str, Any]]:
        """Next example and its position (draw k, cursors and fingerprints before it); moves on."""
        if self._blocks is None:
            raise ValueError(f"{self.name!r}: this TrainIterator is closed")
        try:
            if not self._block:
                self._block = _unblock(next(self._blocks))[::-1]
            ex = self._block.pop()
        except StopIteration:
            raise ValueError(f"{self.name!r}: the example stream ended; a task's split {self.split!r} "
                             f"yields no examples at lengths {self.lengths} (tasks "
                             f"{[t.name for t in self.tasks]})") from None
        except tf.errors.OpError as e:  # raised inside tf.data: name the task, file and line or record
            found = re.search(streams.RESUME_CHECK + r" <(\d+)>", e.message or "")
            if found:
                raise ValueError(streams.resume_error(self.tasks[int(found.group(1))].name)) from None
            raise data_errors.describe(self.tasks, self.split, e) from None
        position = self._next
        cursors, prints = position[1].copy(), position[2].copy()
        cursors[ex["task_index"]] += 1
        if "fingerprint" in ex:
            prints[ex["task_index"]] = ex["fingerprint"]
        self._next = (position[0] + self.num_shards, cursors, prints)
        return position, ex

    def examples(self) -> Iterator[dict[str, Any]]:
        """The unpacked example stream in draw order (with string features if `with_strings`), each
        with its `draw` and `cursors` (the position before it)."""
        while True:
            (k, cursors, _), ex = self._advance()
            yield {**ex, "draw": k, "cursors": cursors}


_OPEN: weakref.WeakSet[TrainIterator] = weakref.WeakSet()  # iterators not yet garbage, closed at exit


@atexit.register
def _close_at_exit() -> None:
    for it in list(_OPEN):
        it.close()


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
    rows = {}
    for key in ("inputs", "targets"):
        ends = np.cumsum(block[key + "_lengths"]).tolist()
        rows[key] = [block[key][a:b] for a, b in zip([0] + ends[:-1], ends)]
    scalars = [k for k in block if k not in ("inputs", "targets", "inputs_lengths", "targets_lengths")]
    return [{"inputs": rows["inputs"][i], "targets": rows["targets"][i], **{k: block[k][i] for k in scalars}}
            for i in range(len(block["task_index"]))]


def make_train_iterator(name: str, task_feature_lengths: Mapping[str, int], batch_size: int, *, seed: int,
                        shard_index: int = 0, num_shards: int = 1, state: Mapping[str, Any] | None = None,
                        pack: bool = True, bos_id: int | None = None, split: str = "train",
                        vocab: Any = None, with_strings: bool = False) -> TrainIterator:
    """Resumable iterator of packed numpy batches for seqio task or mixture `name` (module docstring).

    Batches are [batch_size, inputs + targets] with the docs/ARCHITECTURE.md section-1 features;
    `state=it.state()` from an earlier iterator continues with exactly the batches it would have given.
    `with_strings` keeps the tasks' scalar string features (and `task`) in `.examples()` (inspection;
    packed batches never carry them).
    """
    return TrainIterator(name, task_feature_lengths, batch_size, seed=seed, shard_index=shard_index,
                         num_shards=num_shards, state=state, pack=pack, bos_id=bos_id, split=split,
                         vocab=vocab, with_strings=with_strings)
