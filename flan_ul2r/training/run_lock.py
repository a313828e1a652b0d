"""One writer per MODEL_DIR: `MODEL_DIR/run.lock`, a small JSON file naming the run that holds it.

Two runs writing one MODEL_DIR interleave metrics.jsonl and race on every checkpoint, and both report
success. A run therefore takes the lock before it writes anything, and a second run is refused (a
ConfigError: exit status 2) with the holder named: host, pid, since when, until when.

    {"host": "node-3", "pid": 4121, "token": "9f1c...", "started": ..., "heartbeat": ..., "expires": ...}

- Expiry: the holder rewrites the file every `ttl / 4` seconds (a daemon thread) with `expires` =
  now + `ttl` (default `DEFAULT_TTL_SECONDS`, 5 minutes). A run killed without a chance to release (a
  preempted host, `kill -9`) blocks its MODEL_DIR for at most `ttl`; on the same host a lock whose process
  is gone is taken over at once. A run that lost its lock (stalled longer than `ttl`, then taken over)
  refuses to save another checkpoint.
- Atomicity: on a local or shared POSIX disk the lock is written to a private file and hard-linked to
  its name (the link fails if the name exists: one creator wins, and nobody reads a half-written lock);
  an expired lock is replaced (a temporary file renamed over it: the name never goes missing) by the
  holder of `run.lock.guard`, made the same exclusive way, after reading it again under the guard.
  On `gs://` the same steps are generation-conditioned writes through `google-cloud-storage`
  (`ifGenerationMatch=0` to create, `=<the generation read>` to take over, refresh or delete): Cloud
  Storage's compare-and-swap. Other object stores (s3://...) have no such primitive through this code:
  there the lock is written and read back, which narrows but does not close the race of two runs
  started in the same second.
- Multi-host: process 0 holds the lock for the whole run; the other processes learn the outcome from it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flan_ul2r import fs
from flan_ul2r.errors import ConfigError

LOCK_NAME = "run.lock"
DEFAULT_TTL_SECONDS = 300.0
GUARD_SECONDS = 60.0  # a guard file older than this was left by a process that died while changing the lock


class RunLockedError(ConfigError):
    """MODEL_DIR is held by another run (exit status 2); the message names the holder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _stale(holder: dict[str, Any], now: float) -> bool:
    """Expired, or on this host and its process is gone."""
    if float(holder.get("expires", 0)) < now:
        return True
    return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))


def describe(holder: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    left = float(holder.get("expires", now)) - now
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", now))))
    return (f"pid {holder.get('pid')} on host {holder.get('host')!r}, running since {since}; its lock "
            f"expires in {max(left, 0):.0f} s unless it is refreshed")


class _LocalFile:
    """The lock as a file on a POSIX filesystem (module docstring)."""

    def __init__(self, path: Any):
        self.path = os.fspath(path)

    def read(self) -> tuple[dict[str, Any] | None, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return None, None
        return _parse(text), text

    def _link_new(self, target: str, text: str) -> bool:
        """Writes a private file and hard-links it to `target`: False when `target` exists."""
        mine = f"{target}.new-{uuid.uuid4().hex[:8]}"
        fd = os.open(mine, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.link(mine, target)
        except FileExistsError:
            return False
        finally:
            os.remove(mine)
        return True

    def create(self, text: str) -> bool:
        return self._link_new(self.path, text)

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """The right to change an existing lock: `run.lock.guard`, made the same exclusive way (one left
        for a minute by a process that died holding it is removed)."""
        guard, deadline = f"{self.path}.guard", time.monotonic() + 60
        while not self._link_new(guard, str(os.getpid())):
            try:
                if time.time() - os.stat(guard).st_mtime > GUARD_SECONDS:
                    os.remove(guard)
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise RunLockedError(f"{guard}: another process keeps changing the lock")
            time.sleep(0.02)
        try:
            yield
        finally:
            os.remove(guard)

    def replace(self, text: str, version: Any) -> bool:
        """Replaces the lock (atomically: fs.write_text) if it still reads `version` (the text read)."""
        with self._guarded():
            if self.read()[1] != version:
                return False
            fs.write_text(self.path, text)
            return True

    def delete(self, version: Any) -> None:
        with self._guarded():
            if self.read()[1] == version:
                os.remove(self.path)


class _GcsObject:
    """The lock as a Cloud Storage object, every change conditioned on the generation read."""

    def __init__(self, path: str):
        from google.cloud import storage

        bucket, _, name = path.removeprefix("gs://").partition("/")
        self.blob_name, self.bucket = name, storage.Client().bucket(bucket)

    def read(self) -> tuple[dict[str, Any] | None, Any]:
        blob = self.bucket.get_blob(self.blob_name)
        if blob is None:
            return None, None
        return _parse(blob.download_as_text()), blob.generation

    def _write(self, text: str, generation: int) -> bool:
        from google.api_core import exceptions

        try:
            self.bucket.blob(self.blob_name).upload_from_string(text, if_generation_match=generation)
        except exceptions.PreconditionFailed:
            return False
        return True

    def create(self, text: str) -> bool:
        return self._write(text, 0)

    def replace(self, text: str, version: Any) -> bool:
        return self._write(text, int(version))

    def delete(self, version: Any) -> None:
        from google.api_core import exceptions

        try:
            self.bucket.blob(self.blob_name).delete(if_generation_match=int(version))
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            pass


class _OtherStore(_LocalFile):
    """Object stores without a conditional write: write, then read back (module docstring)."""

    def __init__(self, path: Any):
        self.path = fs.path(path)

    def read(self) -> tuple[dict[str, Any] | None, Any]:
        if not self.path.exists():
            return None, None
        text = fs.read_text(self.path)
        return _parse(text), text

    def create(self, text: str) -> bool:
        if self.path.exists():
            return False
        fs.write_text(self.path, text)
        return self.read()[1] == text

    def replace(self, text: str, version: Any) -> bool:
        if self.read()[1] != version:
            return False
        fs.write_text(self.path, text)
        return self.read()[1] == text

    def delete(self, version: Any) -> None:
        if self.read()[1] == version:
            self.path.unlink()


def _parse(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"expires": 0, "unreadable": text[:80]}


def _store(path: Any) -> Any:
    text = os.fspath(path)
    if text.startswith("gs://"):
        try:
            return _GcsObject(text)
        except Exception as e:  # noqa: BLE001 - no client or no credentials for it: the weaker lock
            print(f"warning: {text}: no Cloud Storage client for a conditional lock ({type(e).__name__}: "
                  f"{e}); writing the lock and reading it back instead", file=sys.stderr)
    return _OtherStore(path) if fs.is_remote(text) else _LocalFile(path)


class RunLock:
    """The lock of one run on `model_dir` (module docstring): `acquire()`, `check()` before each save,
    `release()`; a context manager too."""

    def __init__(self, model_dir: fs.PathLike, ttl: float = DEFAULT_TTL_SECONDS):
        self.path = fs.path(model_dir) / LOCK_NAME
        self.ttl = float(ttl)
        self.token = uuid.uuid4().hex
        self.lost: str | None = None  # why the lock is no longer ours
        self._store = _store(self.path)
        self._started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _text(self) -> str:
        now = time.time()
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "started": self._started, "heartbeat": now, "expires": now + self.ttl})

    def acquire(self) -> RunLock:
        """Takes the lock (creating or taking over a stale one); RunLockedError naming a live holder."""
        for _ in range(5):  # a few rounds: another run may create, release or take over in between
            holder, version = self._store.read()
            if holder is None:
                got = self._store.create(self._text())
            elif _stale(holder, time.time()):
                got = self._store.replace(self._text(), version)
                if got:
                    print(f"{self.path}: took over the stale lock of {describe(holder)}", file=sys.stderr)
            else:
                raise RunLockedError(f"MODEL_DIR {self.path.parent} is in use by another run: "
                                     f"{describe(holder)} ({self.path}). Wait for it to finish, or use "
                                     "another MODEL_DIR; if that run is dead on another host, delete "
                                     f"{self.path} or wait for the lock to expire")
            if got:
                self._thread = threading.Thread(target=self._beat, name="flan_ul2r-run-lock", daemon=True)
                self._thread.start()
                return self
        raise RunLockedError(f"{self.path}: could not take the lock (other runs keep changing it)")

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            self.refresh()

    def refresh(self) -> None:
        """Pushes the expiry on; notes in `lost` when another run has taken the lock over."""
        if self.lost:
            return
        holder, version = self._store.read()
        mine = holder is not None and holder.get("token") == self.token
        if not mine or not self._store.replace(self._text(), version):
            self.lost = (f"the lock {self.path} was taken over by another run "
                         f"({describe(holder) if holder else 'then released'}) after this run did not "
                         f"refresh it for {self.ttl:.0f} s")
            print(f"warning: {self.lost}", file=sys.stderr, flush=True)

    def check(self) -> None:
        """Raises when the lock is no longer this run's (before a checkpoint save)."""
        if self.lost:
            raise RunLockedError(f"not saving: {self.lost}")

    def release(self) -> None:
        """Stops the refreshes and deletes the lock if it is still this run's."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None
        holder, version = self._store.read()
        if holder is not None and holder.get("token") == self.token:
            self._store.delete(version)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def hold(model_dir: fs.PathLike, ttl: float = DEFAULT_TTL_SECONDS) -> RunLock | None:
    """The run's lock, taken by process 0 (None on the other processes); RunLockedError on every process
    when process 0 could not take it."""
    import jax

    lock, error = None, None
    if jax.process_index() == 0:
        try:
            lock = RunLock(model_dir, ttl).acquire()
        except RunLockedError as e:
            error = e
    if jax.process_count() > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        held = bool(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
        if not held and error is None:
            error = RunLockedError(f"MODEL_DIR {model_dir} is in use by another run (process 0's message "
                                   "names it)")
    if error is not None:
        raise error
    return lock
