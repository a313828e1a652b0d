"""Every malformed input we try, the exact message it produces, and docs/BAD_INPUTS.md generated from them.

Each case builds the bad input in a temporary directory, triggers it through the function the CLI calls,
asserts what the message must name (file, line, field, step), and returns the message as the user sees
it. The table in docs/BAD_INPUTS.md must equal what these cases produce now; after changing a message,
regenerate it with

    FLAN_UL2R_UPDATE_DOCS=1 python -m pytest -q tests/test_bad_inputs.py

The checkpoint cases also check that no existing checkpoint is damaged (the previous step restores).
The cases of a run's directory, settings, signals and data live in tests/_bad_inputs_runs.py.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r.training.checkpoints import CheckpointSaveError, TrainCheckpoints
from tests._bad_inputs_runs import RUN_CASES, use_base_run
from tests._xla import xla_flags

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BAD_INPUTS.md"
CASES: dict[str, tuple[str, Callable[[Path], str]]] = {}
_OUTCOMES: dict[str, str] = {}


def case(name: str, caught_by: str):
    def register(fn: Callable[[Path], str]) -> Callable[[Path], str]:
        CASES[name] = (caught_by, fn)
        return fn
    return register


def _gin_error(files: list[str], bindings: list[str], verb: str = "train") -> str:
    from flan_ul2r.gin_utils import parse_gin

    gin.clear_config()
    try:
        with pytest.raises(ValueError) as info:
            parse_gin(files, bindings, finalize=False)
    finally:
        gin.clear_config()
    return f"flan-ul2r {verb}: gin error: {info.value}"


@case("malformed gin file (an unclosed parenthesis)", "`flan-ul2r train` / `inspect`, exit 2")
def _malformed_gin(tmp: Path) -> str:
    (tmp / "bad.gin").write_text("RunConfig.batch_size = (4\nMODEL_DIR = '/tmp/run'\n")
    msg = _gin_error([str(tmp / "bad.gin")], [])
    assert "bad.gin:2" in msg
    return msg


@case("malformed `--gin.NAME=VALUE` binding", "`flan-ul2r train` / `inspect`, exit 2")
def _malformed_binding(tmp: Path) -> str:
    msg = _gin_error([], ["TRAIN_STEPS=(3"])
    assert "TRAIN_STEPS=(3" in msg
    return msg


@case("misspelled gin parameter", "`flan-ul2r train` / `inspect`, exit 2")
def _gin_typo(tmp: Path) -> str:
    import flan_ul2r.main.train  # noqa: F401  (registers `train`)

    (tmp / "typo.gin").write_text("RunConfig.batch_size = 4\nRunConfig.trian_steps = 3\n")
    msg = _gin_error([str(tmp / "typo.gin")], [])
    assert "trian_steps" in msg and "typo.gin" in msg and "line 2" in msg
    return msg


@case("misspelled macro (`--gin.LEARNIN_RATE=1e-4`), which gin would keep unused", "every gin verb, exit 2")
def _unused_macro(tmp: Path) -> str:
    msg = _gin_error(["gin/runs/ul2r.gin"], ["LEARNIN_RATE=1e-4"])
    assert "--gin.LEARNIN_RATE=1e-4" in msg and "did you mean LEARNING_RATE?" in msg
    return msg


@case("unscoped override of a per-stage binding (`--gin.OptimizerConfig.learning_rate=` on a pipeline)",
      "every gin verb, exit 2")
def _hidden_by_a_scope(tmp: Path) -> str:
    msg = _gin_error(["gin/pipelines/smoke.gin"], ["OptimizerConfig.learning_rate=1e-4"], verb="pipeline")
    assert "ul2r/OptimizerConfig.learning_rate" in msg and "flan/OptimizerConfig.learning_rate" in msg
    return msg


@case("unknown task or mixture (`MIXTURE_OR_TASK_NAME = 'ul2r_typo'`)", "`flan-ul2r train`, exit 2")
def _unknown_task(tmp: Path) -> str:
    import flan_ul2r.tasks
    from flan_ul2r.training.config import RunConfig
    from flan_ul2r.training.run import run

    flan_ul2r.tasks.import_all()
    with pytest.raises(ValueError) as info:
        run(RunConfig(model_dir=str(tmp / "run"), mixture_or_task_name="ul2r_typo",
                      task_feature_lengths={"inputs": 8, "targets": 8}, train_steps=1))
    assert "'ul2r_typo'" in str(info.value) and "did you mean" in str(info.value)
    assert "'ul2r'" in str(info.value)
    assert not (tmp / "run").exists()  # nothing created for a run that cannot start
    return f"flan-ul2r train: {info.value}"


def _source_error(spec: str) -> str:
    from flan_ul2r.data.corpus.sources import SourceError, read_documents

    with pytest.raises(SourceError) as info:
        list(read_documents(spec))
    return f"flan-ul2r train: {info.value}"


@case("empty corpus (every document blank)", "corpus build in `train` / `inspect`, exit 1")
def _empty_corpus(tmp: Path) -> str:
    (tmp / "empty.jsonl").write_text('{"text": ""}\n{"text": "   "}\n\n')
    msg = _source_error(f"jsonl:{tmp}/empty.jsonl")
    assert "no documents at all (2 empty skipped" in msg
    return msg


@case("bad UTF-8 in a corpus file", "corpus build in `train` / `inspect`, exit 1")
def _bad_utf8(tmp: Path) -> str:
    (tmp / "latin1.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    msg = _source_error(f"jsonl:{tmp}/latin1.jsonl")
    assert "latin1.jsonl:2" in msg and "byte offset 28" in msg
    return msg


@case("truncated JSONL (the last record cut off)", "corpus build in `train` / `inspect`, exit 1")
def _truncated_jsonl(tmp: Path) -> str:
    (tmp / "cut.jsonl").write_text('{"text": "one"}\n{"text": "two, cut of')
    msg = _source_error(f"jsonl:{tmp}/cut.jsonl")
    assert "cut.jsonl:2" in msg and "not valid JSON" in msg
    return msg


@case("NIV2 task file whose instance lacks `output`", "`read_niv2` (Flan task registration)")
def _niv2_missing_key(tmp: Path) -> str:
    from flan_ul2r.data.flan.formats import FormatError, read_niv2

    task = {"Definition": ["Add the numbers."], "Instances": [{"input": "1 2", "output": ["3"]},
                                                               {"id": "task1-2", "input": "2 2"}]}
    (tmp / "task1_add.json").write_text(json.dumps(task))
    with pytest.raises(FormatError) as info:
        read_niv2(tmp / "task1_add.json")
    assert "Instances[1]" in str(info.value) and "'output'" in str(info.value)
    return str(info.value)


@case("NIV2 task file without `Instances`", "`read_niv2` (Flan task registration)")
def _niv2_no_instances(tmp: Path) -> str:
    from flan_ul2r.data.flan.formats import FormatError, read_niv2

    (tmp / "task2.json").write_text(json.dumps({"Definition": "Say hi."}))
    with pytest.raises(FormatError) as info:
        read_niv2(tmp / "task2.json")
    assert "'Instances'" in str(info.value)
    return str(info.value)


@case("HF directory with a missing safetensors shard", "`flan-ul2r convert import-hf`, exit 1")
def _missing_shard(tmp: Path) -> str:
    from flan_ul2r.convert.hf_import import import_hf

    hf = tmp / "Llama-tiny"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 300, "hidden_size": 64,
        "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5}))
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    (hf / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "model.embed_tokens.weight": shards[0], "lm_head.weight": shards[1]}}))
    (hf / shards[0]).write_bytes(b"")
    with pytest.raises(FileNotFoundError) as info:
        import_hf(hf, tmp / "out")
    assert shards[1] in str(info.value)
    return f"flan-ul2r convert import-hf: {info.value}"


@case("INITIAL_CHECKPOINT_PATH from another model config (d_model 32, model gin 64)",
      "`flan-ul2r train`, exit 1")
def _other_model_config(tmp: Path) -> str:
    import flax.linen as nn

    from flan_ul2r.models.config import preset
    from flan_ul2r.models.decoder import Decoder
    from flan_ul2r.training.checkpoints import save_params
    from flan_ul2r.training.config import ModelSpec, RunConfig
    from flan_ul2r.training.run import run
    from tests._train_toy import LENGTHS, register_toy_mixture

    small = preset("tiny", d_model=32, num_heads=4, num_kv_heads=2, head_dim=8, d_ff=64)
    params = nn.meta.unbox(Decoder(small).init(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32))["params"])
    save_params(tmp / "small", params, small.to_dict())
    with pytest.raises(ValueError) as info:
        run(RunConfig(model_dir=str(tmp / "run"), mixture_or_task_name=register_toy_mixture(),
                      task_feature_lengths=LENGTHS, train_steps=2, initial_checkpoint_path=str(tmp / "small"),
                      model=ModelSpec(shape=preset("tiny"))))
    assert "d_model=64" in str(info.value) and "32" in str(info.value)
    return f"flan-ul2r train: {info.value}"


STATE = {"w": jnp.arange(64.0), "b": jnp.ones((4, 4))}


def _assert_intact(directory: Path, step: int) -> None:
    ckpts = TrainCheckpoints(directory, period=1)
    try:
        assert ckpts.latest_step() == step
        restored, position = ckpts.restore(step, jax.eval_shape(lambda: STATE))
    finally:
        ckpts.close()
    assert position == {"draw": step}
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(STATE)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@case("disk full during a checkpoint save (the write raises ENOSPC, simulated)", "`flan-ul2r train`, exit 1")
def _disk_full(tmp: Path) -> str:
    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    ckpts = TrainCheckpoints(tmp, period=1)
    ckpts.save(1, STATE, {"draw": 1}, wait=True)

    async def no_space(self, value, directory):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))

    original = json_checkpoint_handler.JsonCheckpointHandler._save_fn
    json_checkpoint_handler.JsonCheckpointHandler._save_fn = no_space
    try:
        with pytest.raises(CheckpointSaveError) as info:
            ckpts.save(2, STATE, {"draw": 2}, wait=True)
        ckpts.close()
    finally:
        json_checkpoint_handler.JsonCheckpointHandler._save_fn = original
    assert "step 2" in str(info.value) and "No space left on device" in str(info.value)
    assert "the last complete checkpoint, step 1" in str(info.value)
    _assert_intact(tmp, 1)
    return f"flan-ul2r train: {info.value}"


KILL_MID_SAVE = textwrap.dedent("""
    import sys, time
    import jax.numpy as jnp
    from orbax.checkpoint._src.handlers import json_checkpoint_handler
    from flan_ul2r.training.checkpoints import TrainCheckpoints
    from tests.test_bad_inputs import STATE
    ckpts = TrainCheckpoints(sys.argv[1], period=1)
    ckpts.save(1, STATE, {"draw": 1}, wait=True)
    async def stuck(self, value, directory):  # the save of step 2 stops half-way: the kill lands here
        print("SAVING", flush=True)
        time.sleep(600)
    json_checkpoint_handler.JsonCheckpointHandler._save_fn = stuck
    ckpts.save(2, STATE, {"draw": 2})
    time.sleep(600)
""")


@case("process killed (SIGKILL) in the middle of a checkpoint save", "the next `flan-ul2r train` (resumes)")
def _killed_mid_save(tmp: Path) -> str:
    from flan_ul2r.training.run import resume_note

    env = {**os.environ, "XLA_FLAGS": xla_flags(1)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_MID_SAVE, str(tmp)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "SAVING"
        assert any(p.name.startswith("2.") for p in (tmp / "checkpoints").iterdir())  # half-written
    finally:
        proc.kill()
        proc.wait()
    _assert_intact(tmp, 1)
    ckpts = TrainCheckpoints(tmp, period=1)
    note = resume_note(ckpts, ckpts.latest_step())
    ckpts.close()
    return f"(no error) {note}"


for _name, _caught_by, _fn in RUN_CASES:  # a run's directory, settings, signals, data (one file)
    case(_name, _caught_by)(_fn)


def outcome(name: str, tmp_root: Path) -> str:
    """The case's message with its temporary directory shown as <tmp> (computed once per session)."""
    if name not in _OUTCOMES:
        tmp = tmp_root / f"case{list(CASES).index(name)}"
        tmp.mkdir()
        _OUTCOMES[name] = CASES[name][1](tmp).replace(str(tmp), "<tmp>")
    return _OUTCOMES[name]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def render(outcomes: dict[str, str]) -> str:
    rows = [f"| {name} | {CASES[name][0]} | {_cell(msg)} |" for name, msg in outcomes.items()]
    return "\n".join([
        "# Bad inputs and the messages they produce",
        "",
        "Generated by `tests/test_bad_inputs.py` (which fails when this file is out of date; regenerate with",
        "`FLAN_UL2R_UPDATE_DOCS=1 python -m pytest -q tests/test_bad_inputs.py`). `<tmp>` stands for the",
        "directory the input was in. In the checkpoint rows the previous checkpoint (step 1) is checked to",
        "restore intact afterwards. A NaN loss (tests/test_trainer.py) stops the run naming the step and the",
        "last good checkpoint, and saves nothing after it. In the damaged-checkpoint rows, step 4 is checked",
        "to restore with its data position and step 6 to be moved aside whole; the rows that say `exit 2`",
        "also check that nothing was written (tests/_bad_inputs_runs.py, tests/test_run_safety.py).",
        "",
        "| input | caught by | message |",
        "|---|---|---|",
        *rows, ""])


@pytest.fixture(autouse=True)
def _shared_checkpointed_run(tiny_run):
    use_base_run(tiny_run.model_dir)  # the run cases copy the session's checkpointed run


STARTS_A_PROCESS = {"process killed (SIGKILL) in the middle of a checkpoint save"}  # a fresh Python, killed
PROCESS_MARKS = [pytest.mark.subprocess, pytest.mark.slow]


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=PROCESS_MARKS * (n in STARTS_A_PROCESS))
                                  for n in CASES])
def test_bad_input_gives_a_clear_message(name, tmp_path_factory):
    assert outcome(name, tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.slow
@pytest.mark.subprocess  # every case, the killed process included (cached when the cases ran first)
def test_bad_inputs_table_is_current(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    text = render({name: outcome(name, root) for name in CASES})
    if os.environ.get("FLAN_UL2R_UPDATE_DOCS") == "1":
        DOC.write_text(text)
    assert DOC.is_file() and DOC.read_text() == text, (
        "docs/BAD_INPUTS.md is out of date: run FLAN_UL2R_UPDATE_DOCS=1 python -m pytest -q "
        "tests/test_bad_inputs.py")
