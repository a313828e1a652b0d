"""The bad-input cases of a run's directory, settings, signals and data (docs/BAD_INPUTS.md rows), each
built in a temporary directory and run through the code the CLI calls. tests/test_bad_inputs.py
registers `RUN_CASES` next to its own cases; the behaviour behind each message (what is restored, kept,
moved aside or not written) is asserted here and in tests/test_run_safety.py.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import stat
from pathlib import Path

import pytest

from tests._checkpointed_run import checkpointed_run, config, damage, position, trainer_for

TRAIN = ["--gin_file=gin/runs/train.gin",  # the model: the one stored in MODEL_DIR
         "--gin.MIXTURE_OR_TASK_NAME=toy_lm", "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 32}",
         "--gin.BATCH_SIZE=8", "--gin.RunConfig.progress=False"]
_BASE: dict[str, Path] = {}


def cli(*args: str) -> tuple[int, str]:
    """`flan-ul2r ARGS` in this process: (exit status, what it printed to stderr, last line)."""
    import gin

    from flan_ul2r.cli import main
    from tests._train_toy import register_toy_lm

    register_toy_lm()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(list(args))
    finally:
        gin.clear_config()
    lines = [x for x in err.getvalue().splitlines() if x.strip()]
    return code, lines[-1] if lines else ""


def use_base_run(model_dir) -> None:
    """The checkpointed run the cases copy: the session's `tiny_run` (tests/conftest.py)."""
    _BASE["run"] = Path(model_dir)


def base_run(tmp: Path) -> Path:
    """A copy of one checkpointed run (steps 2, 4, 6): `use_base_run`'s, else made here once."""
    if "run" not in _BASE:
        _BASE["run"] = tmp.parent / "base_run"
        checkpointed_run(_BASE["run"])
    shutil.copytree(_BASE["run"], tmp / "run")
    return tmp / "run"


def heal(tmp: Path, kind: str) -> str:
    """Damages step 6 and restores as `flan-ul2r train` does; checks step 4 restored, 6 set aside."""
    from flan_ul2r.training import run as run_lib
    from flan_ul2r.training.checkpoints import TrainCheckpoints

    model_dir = base_run(tmp)
    damaged = damage(model_dir, 6, kind)
    step6 = model_dir / "checkpoints" / "6"
    files = sorted(str(p.relative_to(step6)) for p in step6.rglob("*"))
    cfg = config(model_dir)
    trainer, _ = trainer_for(cfg)
    ckpts = TrainCheckpoints(model_dir, 2)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            state, data_state = run_lib.restore_or_init(cfg, trainer, ckpts)
    finally:
        ckpts.close()
    assert int(state.step) == 4 and data_state == position(4)  # the newest good step
    aside = model_dir / "checkpoints" / "6.corrupt"
    assert sorted(str(p.relative_to(aside)) for p in aside.rglob("*")) == files  # moved, nothing deleted
    message = err.getvalue().strip()
    named = "an array file is unreadable: OUT_OF_RANGE" if damaged == "array file" else damaged
    assert f"checkpoints/6 is damaged: {named}" in message, message
    return message


def _empty_state_metadata(tmp: Path) -> str:
    return heal(tmp, "empty state metadata")


def _empty_data_position(tmp: Path) -> str:
    return heal(tmp, "empty data position")


def _truncated_array_file(tmp: Path) -> str:
    message = heal(tmp, "truncated array file")
    first = message.split("\n")[0]
    shown = first[:first.index("Error reading") + len("Error reading")]  # which array: TensorStore's order
    return f"{shown} \"<an array>\" in OCDBT database ... (TensorStore's details)\n{message.splitlines()[-1]}"


def _export_damaged_step(tmp: Path) -> str:
    model_dir = base_run(tmp)
    damage(model_dir, 6, "empty state metadata")
    code, line = cli("convert", "export-hf", "--checkpoint", str(model_dir / "checkpoints" / "6"),
                     "--out", str(tmp / "hf"))
    assert code == 1 and "checkpoints/6 is damaged: state/_METADATA" in line and "checkpoints/4" in line
    assert not (tmp / "hf").exists()
    return line


def _second_run(tmp: Path) -> str:
    from flan_ul2r.training.run_lock import RunLock

    model_dir = base_run(tmp)
    before = (model_dir / "train_info.json").read_text()
    with RunLock(model_dir):  # the first run, alive
        code, line = cli("train", *TRAIN, f"--gin.MODEL_DIR={model_dir}", "--gin.TRAIN_STEPS=10")
    assert code == 2 and f"pid {os.getpid()}" in line
    line = re.sub(r"pid \d+ on host '[^']*', running since [\d: -]+;", "pid <pid> on host '<host>', running "
                  "since <time>;", line)
    assert (model_dir / "train_info.json").read_text() == before  # nothing written
    assert not (model_dir / "metrics.jsonl").exists()
    return line


def _export_into_non_empty(tmp: Path) -> str:
    (tmp / "hf").mkdir()
    (tmp / "hf" / "model.safetensors").write_text("someone else's model")
    code, line = cli("convert", "export-hf", "--checkpoint", str(base_run(tmp) / "checkpoints" / "6"),
                     "--out", str(tmp / "hf"))
    assert code == 2 and "--overwrite" in line
    assert (tmp / "hf" / "model.safetensors").read_text() == "someone else's model"
    return line


def _umask(tmp: Path) -> str:
    old = os.umask(0o022)
    try:
        model_dir = base_run(tmp)
        checkpointed_run(model_dir / "again", steps=())
    finally:
        os.umask(old)
    names = ("config.gin", "model_config.json", "train_info.json", "vocab.json", "run_config.json")
    modes = {n: stat.filemode((model_dir / "again" / n).stat().st_mode) for n in names}
    assert set(modes.values()) == {"-rw-r--r--"}, modes
    return f"(no error) {', '.join(names)}: -rw-r--r--; exports too (tests/test_run_safety.py)"


def _killed_run_metrics(tmp: Path) -> str:
    from flan_ul2r.training.metrics import MetricsWriter, read_rows

    for start, stop in ((0, 7), (4, 5)):  # killed after logging step 7; the newest checkpoint is step 4
        writer = MetricsWriter(tmp, total_steps=10, start_step=start, show_bar=False)
        for step in range(start + 1, stop + 1):
            writer.write(step, {"loss": 5.0})
        writer.close()
    steps = [r["step"] for r in read_rows(tmp / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5], steps
    return f"(no error) metrics.jsonl cut back to the checkpoint (step 4), then the resumed steps: {steps}"


def _sigterm_during_restore(tmp: Path) -> str:
    from flan_ul2r.training import checkpoints
    from flan_ul2r.training.run import run

    model_dir = base_run(tmp)
    restore = checkpoints.TrainCheckpoints.restore_newest_good

    def interrupted(self, abstract_state):
        os.kill(os.getpid(), signal.SIGTERM)  # the scheduler's notice, while the checkpoint loads
        return restore(self, abstract_state)

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        patch.setattr(checkpoints.TrainCheckpoints, "restore_newest_good", interrupted)
        summary = run(config(model_dir))
    assert summary["preempted"] == "SIGTERM" and not summary["saved"] and summary["final_step"] == 6
    assert not (model_dir / "run.lock").exists() and not (model_dir / "metrics.jsonl").exists()
    return f"flan-ul2r train: {err.getvalue().strip()} (exit status 75)"


def _plain_prefix_task_with_no_inputs(tmp: Path) -> str:
    import seqio
    import tensorflow as tf

    from flan_ul2r.data.vocab.vocabularies import get_vocabulary
    from flan_ul2r.errors import ConfigError
    from flan_ul2r.training.run import run

    vocab = get_vocabulary("byte")
    if "my_qa" not in seqio.TaskRegistry.names():
        seqio.TaskRegistry.add("my_qa", source=seqio.FunctionDataSource(
            lambda split, shuffle_files, seed=None: tf.data.Dataset.from_tensors(
                {"inputs": [1, 2, 3], "targets": [4, 5]}), splits=["train"]), preprocessors=[],
            output_features={"inputs": seqio.Feature(vocab), "targets": seqio.Feature(vocab)})
    with pytest.raises(ConfigError) as info:
        run(config(tmp / "run", mixture_or_task_name="my_qa",
                   task_feature_lengths={"inputs": 0, "targets": 64}))
    assert "'my_qa'" in str(info.value) and not (tmp / "run").exists()
    return f"flan-ul2r train: {info.value}"


def _setting(binding: str, named: str):
    def check(tmp: Path) -> str:
        code, line = cli("train", *TRAIN, f"--gin.MODEL_DIR={tmp / 'run'}", "--gin.TRAIN_STEPS=10", binding)
        assert code == 2 and named in line and not (tmp / "run").exists(), (code, line)
        return line
    return check


def _resume_with_other_lengths(tmp: Path) -> str:
    model_dir = base_run(tmp)
    before = (model_dir / "train_info.json").read_text()
    code, line = cli("train", *TRAIN, f"--gin.MODEL_DIR={model_dir}", "--gin.TRAIN_STEPS=10",
                     "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 48}", "--gin.BATCH_SIZE=16")
    assert code == 2 and "'inputs': 16" in line and "'inputs': 32" in line and "BATCH_SIZE=16" in line
    assert (model_dir / "train_info.json").read_text() == before
    return line


def _streamed_json_line(tmp: Path) -> str:
    from flan_ul2r.data.core.loader import make_train_iterator
    from flan_ul2r.data.core.tfdata_errors import DataError
    from flan_ul2r.data.corpus.sources import parse_source_spec
    from flan_ul2r.data.ul2.corpus_tasks import StreamCorpus, register_corpus_lm
    from flan_ul2r.data.vocab.vocabularies import ByteVocabulary

    lines = [json.dumps({"text": f"document {i} " * 20}) for i in range(40)]
    lines[25] = '{"text": "a line cut by an editor'
    (tmp / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    name = register_corpus_lm("streamed_lm", StreamCorpus(parse_source_spec(f"jsonl:{tmp}/corpus.jsonl")),
                              ByteVocabulary())
    with pytest.raises(DataError) as info:
        for _ in make_train_iterator(name, {"inputs": 0, "targets": 64}, 4, seed=0):
            pass
    assert "corpus.jsonl:26: not valid JSON" in str(info.value) and "'streamed_lm'" in str(info.value)
    return f"flan-ul2r train: {info.value}"


def truncated_tfrecord_task(tmp: Path, records: int = 200) -> str:
    """A user's plain seqio task over a TFRecord file cut in the middle of a record; returns its name."""
    import seqio
    import tensorflow as tf

    from flan_ul2r.data.vocab.vocabularies import get_vocabulary

    path = tmp / "qa.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(records):
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"fact {i} ".encode() * 4]))}
            )).SerializeToString())
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2 + 5)
    seqio.TaskRegistry.remove("my_facts")
    vocab = get_vocabulary("byte")
    seqio.TaskRegistry.add("my_facts", source=seqio.TFExampleDataSource(
        {"train": str(path)}, feature_description={"text": tf.io.FixedLenFeature([], tf.string)}),
        preprocessors=[lambda ds: ds.map(lambda ex: {"targets": ex["text"]}), seqio.preprocessors.tokenize],
        output_features={"targets": seqio.Feature(vocab)})
    return "my_facts"


def _truncated_tfrecord(tmp: Path) -> str:
    from flan_ul2r.data.core.loader import make_train_iterator
    from flan_ul2r.data.core.tfdata_errors import DataError

    name = truncated_tfrecord_task(tmp)
    with pytest.raises(DataError) as info:
        for _ in make_train_iterator(name, {"targets": 64}, 4, seed=0):
            pass
    assert f"{tmp}/qa.tfrecord: damaged TFRecord at byte offset" in str(info.value)
    assert "'my_facts'" in str(info.value)
    return f"flan-ul2r train: {info.value}"


def _initial_checkpoint_is_a_model_dir(tmp: Path) -> str:
    from flan_ul2r.training.run import run

    model_dir = base_run(tmp)
    with pytest.raises(FileNotFoundError) as info:
        run(config(tmp / "new", initial_checkpoint_path=str(model_dir)))
    assert "checkpoints/6" in str(info.value)
    return f"flan-ul2r train: {info.value}"


def _missing_gin_file(tmp: Path) -> str:
    code, line = cli("train", f"--gin_file={tmp}/nope.gin", f"--gin.MODEL_DIR={tmp}/run")
    assert code == 2 and "nope.gin: no such file" in line
    assert not (tmp / "run").exists()
    return line.split(" (searched")[0] + " (searched ...)"


def _unknown_task_in_inspect(tmp: Path) -> str:
    code, line = cli("inspect", "--task", "ul2r_tpyo")
    assert code == 2 and "did you mean" in line
    return line


RUN_CASES = [
    ("damaged newest checkpoint: empty `state/_METADATA`", "`flan-ul2r train` (falls back, resumes)",
     _empty_state_metadata),
    ("damaged newest checkpoint: empty `data/metadata` (the data position)",
     "`flan-ul2r train` (falls back, resumes)", _empty_data_position),
    ("damaged newest checkpoint: an OCDBT array file cut in half", "`flan-ul2r train` (falls back, resumes)",
     _truncated_array_file),
    ("`convert export-hf` (or `load_model`, `eval`, `infer`) of a damaged step", "exit 1",
     _export_damaged_step),
    ("a second run on a MODEL_DIR another run holds", "`flan-ul2r train`, exit 2", _second_run),
    ("`convert export-hf --out` a non-empty directory", "`flan-ul2r convert export-hf`, exit 2",
     _export_into_non_empty),
    ("umask 022 (shared storage)", "run files and exports", _umask),
    ("a run killed after logging steps past its checkpoint, then resumed", "`flan-ul2r train` (resumes)",
     _killed_run_metrics),
    ("SIGTERM before the first step (here: while the checkpoint loads)", "`flan-ul2r train`, exit 75",
     _sigterm_during_restore),
    ("`TASK_FEATURE_LENGTHS={'inputs': 0, ...}` for a plain seqio task with an `inputs` feature",
     "`flan-ul2r train`, exit 2", _plain_prefix_task_with_no_inputs),
    ("`--gin.LEARNING_RATE=-0.003`", "`flan-ul2r train`, exit 2", _setting("--gin.LEARNING_RATE=-0.003",
                                                                          "LEARNING_RATE")),
    ("`--gin.TRAIN_STEPS=0`", "`flan-ul2r train`, exit 2", _setting("--gin.TRAIN_STEPS=0", "TRAIN_STEPS")),
    ("`--gin.CHECKPOINT_PERIOD=0`", "`flan-ul2r train`, exit 2", _setting("--gin.CHECKPOINT_PERIOD=0",
                                                                          "CHECKPOINT_PERIOD")),
    ("`--gin.TRAIN_STEPS=ten`", "`flan-ul2r train`, exit 2",
     _setting("--gin.TRAIN_STEPS=ten", "TRAIN_STEPS")),
    ("`--gin.BATCH_SIZE=2.5`", "`flan-ul2r train`, exit 2", _setting("--gin.BATCH_SIZE=2.5", "BATCH_SIZE")),
    ("`--gin.BATCH_SIZE=0`", "`flan-ul2r train`, exit 2", _setting("--gin.BATCH_SIZE=0", "BATCH_SIZE")),
    ("resume with other `TASK_FEATURE_LENGTHS` and `BATCH_SIZE`", "`flan-ul2r train`, exit 2",
     _resume_with_other_lengths),
    ("a line that is not JSON in a streamed corpus (`ul2r_corpus.cache=False`)", "`flan-ul2r train`, exit 1",
     _streamed_json_line),
    ("a user's seqio task over a truncated TFRecord", "`flan-ul2r train`, exit 1 (after saving, if it had "
     "started)", _truncated_tfrecord),
    ("`INITIAL_CHECKPOINT_PATH=<a MODEL_DIR>`", "`flan-ul2r train`, exit 1",
     _initial_checkpoint_is_a_model_dir),
    ("missing `--gin_file`", "every gin verb, exit 2", _missing_gin_file),
    ("unknown task in `inspect --task`", "`flan-ul2r inspect`, exit 2", _unknown_task_in_inspect),
]
