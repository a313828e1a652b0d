"""Remote paths and resume: a run whose MODEL_DIR is gs://... is killed, resumed from its checkpoint there,
and ends bit-identical to a straight local run; its metrics, TensorBoard events, plot and run files are
all there, and nothing lands on the local disk (tests/fake_gcs.py: an in-memory GCS that orbax's
TensorStore writer, google-cloud-storage and epath all reach)."""
import os
import struct
import tempfile

import jax
import numpy as np
import pytest

from flan_ul2r import fs
from flan_ul2r.training.checkpoints import restore_params
from flan_ul2r.training.metrics import read_metrics, read_rows
from tests.fake_gcs import fake_gcs
from tests.test_trainer import _run

RUN = "gs://flan-test-bucket/runs/one"


def _events(data: bytes) -> list:
    """Event protos of a TFRecord-framed event file (8-byte length, 4-byte crc, data, 4-byte crc)."""
    from tensorboardX.proto import event_pb2

    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        out.append(event_pb2.Event.FromString(data[i + 12:i + 12 + n]))
        i += 12 + n + 4
    return out


@pytest.fixture()
def clean_local_dirs(tmp_path, monkeypatch):
    """A fresh working directory and temp directory, to check that nothing is written to either."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return cwd, tmp


def _local_files(folder) -> list[str]:
    """What a run left in `folder`, less TF autograph's generated sources (TF traces the tf.data map
    functions into `__autograph_generated_file*.py` in the temp dir; not our output)."""
    return [f for f in os.listdir(folder) if not f.startswith("__autograph_generated_file")]


def _assert_run_files(run):
    for name in ("config.gin", "model_config.json", "vocab.json", "train_info.json", "run_config.json"):
        assert fs.path(f"{run}/{name}").is_file(), name
    assert fs.read_bytes(f"{run}/loss.png")[:8] == b"\x89PNG\r\n\x1a\n"
    event_files = [p for p in fs.path(f"{run}/tb").iterdir() if p.name.startswith("events.out.tfevents")]
    assert len(event_files) == 2  # one per process start
    logged = {(v.tag, e.step) for f in event_files for e in _events(f.read_bytes()) for v in e.summary.value}
    assert {("train/loss", s) for s in range(1, 9)} <= logged


@pytest.mark.slow
def test_killed_run_resumed_on_gcs_is_bit_identical_to_a_straight_local_run(tmp_path, clean_local_dirs):
    whole = tmp_path / "whole"
    _run(whole, 8)  # straight, local
    with fake_gcs() as store:
        _run(RUN, 8, stop_after_steps=4)  # "killed" after step 4; the last checkpoint is step 3 (period 3)
        assert "flan-test-bucket/runs/one/checkpoints/3/commit_success.txt" in store.names()
        summary = _run(RUN, 8)  # the same run again: resumes from step 3, replays step 4
        assert summary["final_step"] == 8 and not summary["already_done"]

        rows = read_rows(f"{RUN}/metrics.jsonl")
        assert [r["step"] for r in rows] == list(range(1, 9))  # cut back to step 3, then 4 logged anew
        assert rows[3]["resumed_from"] == 3
        latest = {r["step"]: r for r in read_metrics(f"{RUN}/metrics.jsonl")}
        assert sorted(latest) == list(range(1, 9))
        straight = {r["step"]: r for r in read_metrics(whole / "metrics.jsonl")}
        for step in range(1, 9):
            assert latest[step]["loss"] == straight[step]["loss"], step  # bit-identical on CPU
        steps = sorted(int(p.name) for p in fs.path(f"{RUN}/checkpoints").iterdir() if p.name.isdigit())
        assert steps == [3, 6, 8]
        a, _ = restore_params(whole / "checkpoints" / "8")
        b, _ = restore_params(f"{RUN}/checkpoints/8")
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        _assert_run_files(RUN)
        again = _run(RUN, 8)  # a finished run re-run: nothing to do, no error
        assert again["already_done"] and again["final_step"] == 8
    cwd, tmp = clean_local_dirs
    assert _local_files(cwd) == [] and _local_files(tmp) == []
