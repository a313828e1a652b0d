"""TensorBoard event files on any filesystem `flan_ul2r.fs` speaks (gs://, s3://, local).

tensorboardX (pure Python, no TF op per scalar as `tf.summary` would run in the training process) writes
the events. Its own `gs://` writer is a separate route through google-cloud-storage's blob API (users saw
it crash when that client was missing) and its `s3://` writer needs boto3. Here every remote scheme goes
through `epath` instead, the layer the rest of the run uses (same credentials, same test filesystem): on
gs:// that is `tf.io.gfile`, whose flush uploads the file so far, so TensorBoard pointed at
`gs://bucket/run/tb` sees the run while it trains (every `flush_secs`). Local directories keep
tensorboardX's plain files.
"""
from __future__ import annotations

from typing import Any

from flan_ul2r import fs, hidden_imports

REMOTE_SCHEMES = ("gs", "s3", "az", "hf")


class _EpathEventFile:
    """The write/flush/close file tensorboardX's RecordWriter expects (no `fileno`: nothing to fsync)."""

    def __init__(self, path: str):
        self._file = fs.path(path).open("wb")

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _EpathWriterFactory:
    def open(self, path: str) -> _EpathEventFile:
        return _EpathEventFile(path)

    def directory_check(self, path: str) -> None:
        fs.path(path).mkdir(parents=True, exist_ok=True)


def _tensorboardx() -> Any:
    """tensorboardX, imported without torch. Its writer imports torch whenever torch is installed, only so
    that it accepts torch tensors (we pass floats and numpy): 1.4 s of CPU and about 180 MB at the start
    of every run (flan_ul2r/hidden_imports.py); a process that already has torch keeps it."""
    with hidden_imports.without("torch"):
        import tensorboardX
    return tensorboardX


def register_remote_filesystems() -> None:
    """Routes tensorboardX's event files for every remote scheme through `flan_ul2r.fs` (idempotent)."""
    _tensorboardx()
    from tensorboardX import record_writer

    for scheme in REMOTE_SCHEMES:
        record_writer.register_writer_factory(scheme, _EpathWriterFactory())


def summary_writer(logdir: str, flush_secs: int = 30) -> Any:
    """A tensorboardX SummaryWriter for `logdir` (local or remote)."""
    register_remote_filesystems()
    return _tensorboardx().SummaryWriter(logdir, flush_secs=flush_secs)
