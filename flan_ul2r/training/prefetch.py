"""Batches fetched, packed and put on the devices by a background thread, ahead of the step that needs them.

The main thread only dispatches steps; this thread runs the host side (tf.data / Python packing,
`check_batch`, `jax.make_array_from_process_local_data`) for batch k+1 while the devices run step k
(double buffering: `depth=2` batches wait on the devices at most). Each item carries the loader position
*after* its batch, taken in the thread right after `next(data)`, so a checkpoint saved with step k
records exactly where batch k+1 starts even though batch k+1 (and k+2) are already fetched: a resumed
run sees the same batches as an uninterrupted one.

    with DevicePrefetcher(data, to_device, depth=2) as batches:
        batch = next(batches)          # Prefetched(device_batch, position, num_tokens)
"""
from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_END = object()


@dataclasses.dataclass(frozen=True)
class Prefetched:
    batch: Any  # the global (device) batch
    position: dict[str, Any]  # the loader position after this batch (`data.state()`)
    num_tokens: int  # host-local tokens in the batch


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: BaseException


class DevicePrefetcher:
    """An iterator of `Prefetched` items filled by a daemon thread; errors re-raise in the consumer."""

    def __init__(self, data: Iterator[dict[str, Any]], to_device: Callable[[dict[str, Any]], Any],
                 depth: int = 2):
        if depth < 1:
            raise ValueError(f"prefetch depth={depth}: must be >= 1")
        self._data, self._to_device = data, to_device
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="flan_ul2r-prefetch", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            for local in self._data:
                position = self._data.state() if hasattr(self._data, "state") else {}
                tokens = int(local["decoder_input_tokens"].size)
                if not self._put(Prefetched(self._to_device(local), position, tokens)):
                    return
            self._put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Failed(e))

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> DevicePrefetcher:
        return self

    def __next__(self) -> Prefetched:
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # later calls also stop
            raise StopIteration
        if isinstance(item, _Failed):
            raise item.error
        return item

    def close(self) -> None:
        """Stops the thread (it may be blocked on a full queue), drops what it prefetched, and lets go of
        the data iterator now: a tf.data iterator freed only at interpreter exit can hang the process
        (its worker threads cannot take the GIL any more to finish a Python generator's call)."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._data = None

    def __enter__(self) -> DevicePrefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
