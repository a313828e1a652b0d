"""Nothing lost, nothing silent: a run's directory and its start-up, end to end.

- a damaged newest checkpoint is set aside and the run resumes from the newest good one, metrics.jsonl
  cut back to it; when the data fails after training started the run saves first (one in-process run on
  the toy model: the expensive test of this file);
- every checkpoint damaged is an error, not a silent fresh start; load_model names the damage and says
  nothing about orbax's own metadata file;
- one writer per MODEL_DIR: a live holder refuses, a stale one is taken over, two racers get one lock,
  on a local disk and through Cloud Storage's generation preconditions (tests/fake_gcs.py);
- export-hf replaces a directory whole or not at all; files follow the umask;
- SIGTERM from the first second: a signal before the first step exits 75 (a child process: the exit
  status is the behaviour), after it the step finishes and is saved;
- `prefix_lm` is what the batches held; a plain-seqio TFRecord task's damage names file, offset, task; a
  bad line in a streamed corpus ends `flan-ul2r train` with one message and no hang.
The messages themselves are rows of docs/BAD_INPUTS.md (tests/_bad_inputs_runs.py).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flan_ul2r.errors import ConfigError
from tests._checkpointed_run import DAMAGES, checkpointed_run, config, damage, position
from tests._train_child import SlowData
from tests._xla import xla_flags

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def base(tiny_run):
    """The session's checkpointed run (tests/conftest.py): steps 2, 4, 6 of the toy model."""
    return tiny_run


def _copy(base, tmp_path) -> Path:
    shutil.copytree(base.model_dir, tmp_path / "run")
    return tmp_path / "run"


class FailingData(SlowData):
    """The loader (with its `state()`), failing the way a corrupt record does after `good` batches."""

    def __init__(self, data, good: int):
        super().__init__(data, delay=0.0)
        self.good = good

    def __next__(self):
        if self.good == 0:
            raise ValueError("/data/part-7.tfrecord: damaged TFRecord at byte offset 1234 (task 'toy_lm')")
        self.good -= 1
        return super().__next__()


def _rows(model_dir):
    return [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_damaged_step_heals_and_a_data_error_later_saves_first(base, tmp_path, monkeypatch, capsys):
    """As a user meets it: the newest checkpoint (6) is damaged and metrics.jsonl holds the killed run's
    rows up to step 6; the run sets 6 aside, resumes from 4, cuts the rows back to 4, trains 5 to 7, and
    when the data fails on the batch of step 8 it saves step 7 before stopping."""
    from flan_ul2r.training import loop
    from flan_ul2r.training.loop import DataStoppedRun
    from flan_ul2r.training.run import run

    model_dir = _copy(base, tmp_path)
    damage(model_dir, 6, "truncated array file")
    (model_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n"
                                                     for s in range(1, 7)))
    make = loop.make_data
    monkeypatch.setattr(loop, "make_data", lambda cfg, state: FailingData(make(cfg, state), good=3))
    with pytest.raises(DataStoppedRun, match=r"part-7.tfrecord.*; saved step 7 first \(.*checkpoints/7\)"):
        run(config(model_dir))
    err = capsys.readouterr().err
    assert "checkpoints/6 is damaged: an array file is unreadable" in err and "checkpoints/4" in err
    names = sorted(p.name for p in (model_dir / "checkpoints").iterdir())
    assert names == ["4", "6", "6.corrupt", "7"]  # 6 trained anew, 7 saved by the data error (keep=3)
    rows = _rows(model_dir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]  # one row per step: cut back to 4
    assert [r["loss"] for r in rows[:4]] == [9.0] * 4 and rows[4]["resumed_from"] == 4
    saved = json.loads((model_dir / "checkpoints" / "7" / "data" / "metadata").read_text())
    assert saved["draw"] > position(4)["draw"]  # the position after the batch of step 7
    info = json.loads((model_dir / "train_info.json").read_text())
    assert info["prefix_lm"] is False and info["batch_size"] == 8  # toy_lm's batches: causal, inputs 32


def test_every_step_damaged_is_an_error_not_a_fresh_start(base, tmp_path):
    from flan_ul2r.checkpoint_health import DamagedCheckpointError
    from flan_ul2r.training.checkpoints import TrainCheckpoints
    from tests._checkpointed_run import trainer_for

    model_dir = _copy(base, tmp_path)
    for step, kind in zip((2, 4, 6), DAMAGES):
        damage(model_dir, step, kind)
    trainer, _ = trainer_for(config(model_dir))
    for _ in range(2):  # and again, once they are all set aside
        ckpts = TrainCheckpoints(model_dir, 2)
        with pytest.raises(DamagedCheckpointError, match=r"every checkpoint .* is damaged .*'2.corrupt'"):
            ckpts.restore_newest_good(trainer.abstract_state)
        ckpts.close()
    assert sorted(p.name for p in (model_dir / "checkpoints").iterdir()) == ["2.corrupt", "4.corrupt",
                                                                             "6.corrupt"]


def test_load_model_names_the_damage_and_is_quiet_about_orbax_metadata(base, tmp_path, caplog, capsys):
    import flan_ul2r
    from flan_ul2r.checkpoint_health import DamagedCheckpointError

    model_dir = _copy(base, tmp_path)
    damage(model_dir, 6, "empty state metadata")
    damage(model_dir, 4, "empty data position")  # not read by load_model: a note, and the model loads
    with caplog.at_level(logging.WARNING):
        model = flan_ul2r.load_model(str(model_dir / "checkpoints" / "4"))
    assert model.config.d_model == 32
    assert not [r for r in caplog.records if "Metadata file does not exist" in r.getMessage()]
    assert "checkpoints/4 is damaged: data/metadata (the data position) is empty" in capsys.readouterr().err
    with pytest.raises(DamagedCheckpointError, match=r"checkpoints/6 is damaged: state/_METADATA .* empty"):
        flan_ul2r.load_model(str(model_dir / "checkpoints" / "6"))


def test_no_orbax_thread_outlives_a_run_that_failed_to_start(base, tmp_path, monkeypatch):
    from flan_ul2r.training import checkpoints
    from flan_ul2r.training.run import run

    closed = []
    close = checkpoints.TrainCheckpoints.close
    monkeypatch.setattr(checkpoints.TrainCheckpoints, "close",
                        lambda self: (closed.append(self), close(self)))

    def failed_start(name):
        with pytest.raises(FileNotFoundError, match="is a training MODEL_DIR"):
            run(config(tmp_path / name, initial_checkpoint_path=str(base.model_dir)))

    # The first failed start may bring up threads that live as long as the process (asyncio's default
    # executor, `asyncio_0`), whichever test in this process touches orbax first; a thread that each run
    # leaves behind shows in the second. That executor also adds a worker (`asyncio_1`, ...) when its
    # threads are busy, e.g. with a coroutine another test in this process left: the pool growing, not a
    # thread of this run (a new executor's first thread, `asyncio_0` again, still counts).
    failed_start("first")
    before = set(threading.enumerate())
    failed_start("second")
    left = [t.name for t in set(threading.enumerate()) - before
            if t.is_alive() and not re.fullmatch(r"asyncio_[1-9]\d*", t.name)]
    assert not left, left  # an open CheckpointManager's cleanup thread printed a traceback at exit
    assert len(closed) == 2  # each run's checkpoint manager was closed (not every orbax version has a thread)


def test_a_live_holder_refuses_a_stale_one_is_taken_over_and_racers_get_one_lock(tmp_path):
    from flan_ul2r.training.run_lock import LOCK_NAME, RunLock, RunLockedError

    held = RunLock(tmp_path).acquire()
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    held.release()
    assert not (tmp_path / LOCK_NAME).exists()

    for stale in ({"host": "elsewhere", "pid": 1, "expires": time.time() - 1},  # expired
                  {"host": os.uname().nodename, "pid": _dead_pid(), "expires": time.time() + 999}):  # gone
        (tmp_path / LOCK_NAME).write_text(json.dumps({**stale, "started": 0, "token": "old"}))
        lock = RunLock(tmp_path).acquire()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == lock.token
        lock.release()

    got, barrier = [], threading.Barrier(8)

    def race():
        barrier.wait()
        try:
            got.append(RunLock(tmp_path).acquire())
        except RunLockedError:
            pass

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 1
    got[0].release()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cloud_storage_lock_uses_generation_preconditions(tmp_path):
    from flan_ul2r.training.run_lock import RunLock, RunLockedError
    from tests.fake_gcs import fake_gcs

    with fake_gcs() as store:
        first = RunLock("gs://bucket/run", ttl=60).acquire()
        with pytest.raises(RunLockedError, match="in use by another run"):
            RunLock("gs://bucket/run").acquire()
        first._stop.set()  # a stalled holder: no refreshes, and its lock expires
        blob = first._store.bucket.blob(first._store.blob_name)
        blob.upload_from_string(json.dumps({**json.loads(blob.download_as_text()), "expires": 0}))
        second = RunLock("gs://bucket/run").acquire()
        first.refresh()  # the stalled run notices, and will not save
        with pytest.raises(RunLockedError, match="taken over by another run"):
            first.check()
        first.release()
        assert store.names() == ["bucket/run/run.lock"]  # the second run's lock stays
        second.release()
        assert store.names() == []


@pytest.mark.slow
def test_export_replaces_a_directory_whole_or_not_at_all_with_the_umask(base, tmp_path):
    from flan_ul2r.checkpoint_health import DamagedCheckpointError
    from flan_ul2r.convert.hf_export import export_hf

    model_dir = _copy(base, tmp_path)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "README.md").write_text("an older export")
    with pytest.raises(ConfigError, match="not empty"):
        export_hf(model_dir / "checkpoints" / "6", out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]
    damage(model_dir, 4, "empty state metadata")
    with pytest.raises(DamagedCheckpointError):
        export_hf(model_dir / "checkpoints" / "4", out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "run"]  # no staging folder left
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]
    old = os.umask(0o027)
    try:
        export_hf(model_dir / "checkpoints" / "6", out, overwrite=True)
    finally:
        os.umask(old)
    names = sorted(p.name for p in out.iterdir())
    assert "README.md" not in names and "model.safetensors" in names and "config.json" in names
    assert {stat.filemode(p.stat().st_mode) for p in out.iterdir()} == {"-rw-r-----"}  # umask 027
    assert stat.filemode(out.stat().st_mode) == "drwxr-x---"


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        checkpointed_run(tmp_path / "run", steps=())
    finally:
        os.umask(old)
    modes = {p.name: stat.filemode(p.stat().st_mode) for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert set(modes.values()) == {"-rw-rw-r--"}, modes


def test_a_signal_before_the_first_step_stops_at_once_after_it_only_flags():
    from flan_ul2r.training.preemption import Preempted, watching

    previous = signal.getsignal(signal.SIGTERM)
    with watching() as watcher:
        watcher.next_step = 5
        with pytest.raises(Preempted, match="SIGTERM: preempted before step 5: nothing to save, run again"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        watcher.signal_name = None
        watcher.begin_training()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert watcher.reached(5) and watcher.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous  # the handlers are put back


def test_a_start_up_signal_swallowed_by_a_destructor_still_stops_before_the_first_step():
    """CPython runs a signal handler wherever the main thread is: inside a `__del__` its exception is
    printed ("Exception ignored in") and the start-up goes on; the loop must still not train step 1."""
    from flan_ul2r.training.preemption import Preempted, watching

    class SignalledWhileCollected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the handler runs here, and its Preempted is swallowed

    with watching() as watcher:
        watcher.next_step = 1
        obj = SignalledWhileCollected()
        del obj  # "Exception ignored in ... Preempted: SIGTERM: preempted before step 1"
        assert watcher.signal_name == "SIGTERM" and not watcher.training
        with pytest.raises(Preempted, match="SIGTERM: preempted before step 1: nothing to save"):
            watcher.begin_training()
        assert not watcher.training


def _child(model_dir, *extra, env=None):
    args = ["--gin_file=gin/runs/train.gin", "--gin_file=gin/models/tiny.gin",
            "--gin.MIXTURE_OR_TASK_NAME=toy_ul2r", "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 32}",
            f"--gin.MODEL_DIR={model_dir}", "--gin.TRAIN_STEPS=4", "--gin.BATCH_SIZE=8",
            "--gin.RunConfig.progress=False", *extra]
    env = {**os.environ, "XLA_FLAGS": xla_flags(1), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "tests._train_child", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigterm_during_start_up_exits_75_with_nothing_to_save(tmp_path):
    waiting = tmp_path / "waiting"  # made when the loader starts on the first batch (tests/_train_child.py)
    proc = _child(tmp_path / "run", env={"FLAN_UL2R_TEST_WAITING_FILE": str(waiting)})
    deadline = time.monotonic() + 300
    while not waiting.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    # Start-up is over (model built, checkpoints opened, run files written, the data iterator made): the
    # main thread is about to wait for a first batch that never comes (the child's loader fails once the
    # signal is noted, so a run that waited for the batch exits 1 with that failure instead of 75).
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]
    assert "abandoned" not in err, err[-3000:]
    assert "SIGTERM: preempted before step 1: nothing to save, run again" in err
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir()), list(checkpoints.rglob("*"))
    assert not (tmp_path / "run" / "run.lock").exists()


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_bad_line_in_a_streamed_corpus_ends_train_with_one_message(tmp_path):
    lines = [json.dumps({"text": f"document {i} " * 30}) for i in range(200)]
    lines[1] = "{not json"
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "flan_ul2r.cli", "train", "--gin_file=gin/runs/pretrain.gin",
           "--gin_file=gin/models/tiny.gin", f"--gin.MODEL_DIR={tmp_path / 'run'}", "--gin.TRAIN_STEPS=10",
           "--gin.TASK_FEATURE_LENGTHS={'inputs': 0, 'targets': 64}", "--gin.BATCH_SIZE=4",
           "--gin.RunConfig.progress=False", f"--gin.ul2r_corpus.spec=jsonl:{tmp_path}/corpus.jsonl",
           "--gin.ul2r_corpus.cache=False"]
    env = {**os.environ, "XLA_FLAGS": xla_flags(1)}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # no hang
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "op_kernel" not in out.stderr, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"flan-ul2r train: {tmp_path}/corpus.jsonl:2: not valid JSON"), last
    assert last.endswith("(task 'lm', split 'train')"), last


def test_an_error_in_a_users_preprocessor_names_the_task_and_the_error():
    import seqio
    import tensorflow as tf

    from flan_ul2r.data.core.loader import make_train_iterator
    from flan_ul2r.data.core.tfdata_errors import DataError
    from flan_ul2r.data.vocab.vocabularies import get_vocabulary

    def parse(text):
        if b"7" in text.numpy():
            raise ValueError(f"row {text.numpy().decode()!r} has no answer")
        return text

    def parsed(ex):
        text = tf.py_function(parse, [ex["text"]], tf.string)
        text.set_shape([])
        return {"targets": text}

    def preprocess(ds):
        return ds.map(parsed)

    rows = tf.data.Dataset.from_tensor_slices([f"fact {i} is true" for i in range(10)])
    seqio.TaskRegistry.remove("my_parsed")
    seqio.TaskRegistry.add("my_parsed", source=seqio.FunctionDataSource(
        lambda split, shuffle_files, seed=None: rows.map(lambda t: {"text": t}), splits=["train"]),
        preprocessors=[preprocess, seqio.preprocessors.tokenize],
        output_features={"targets": seqio.Feature(get_vocabulary("byte"))})
    named = r"task my_parsed \(split 'train'\): ValueError: row 'fact 7 is true' has no answer"
    with pytest.raises(DataError, match=named):
        for _ in make_train_iterator("my_parsed", {"targets": 32}, 2, seed=0):
            pass


def test_prefix_lm_comes_from_the_batches():
    import numpy as np

    from flan_ul2r.data.core.feature_converter import Packer
    from flan_ul2r.training.run_files import batch_has_prefix

    for inputs, expected in (([], False), ([5, 6, 7], True)):
        packer = Packer(2, 16, bos_id=0, pack=True)
        packer.add(np.array(inputs, np.int32), np.array([8, 9], np.int32))
        assert batch_has_prefix(packer.emit()) is expected


def test_resume_settings_named_both_ways_and_allowed_on_request(base):
    from flan_ul2r.training.run_files import check_resume_settings

    changed = dataclasses.replace(config(base.model_dir), batch_size=16)
    with pytest.raises(ConfigError, match="BATCH_SIZE=16 but the checkpoint's run used 8"):
        check_resume_settings(changed, 6)
    check_resume_settings(dataclasses.replace(changed, allow_data_change=True), 6)  # allowed: no error
    check_resume_settings(config(base.model_dir), 6)  # unchanged
