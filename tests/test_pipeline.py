"""`flan-ul2r pipeline` end to end on a reduced smoke pipeline: every artifact, an interrupted stage that
resumes, a finished re-run that does nothing, a compute ledger that adds up, and a report whose table is
the stages' own results."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests._xla import xla_flags

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "XLA_FLAGS": xla_flags(1)}
REDUCED = [  # the smoke pipeline, shrunk to seconds per stage
    "--gin_file=gin/pipelines/smoke.gin", "--gin.BASE_STEPS=6", "--gin.UL2R_STEPS=12", "--gin.FLAN_STEPS=2",
    "--gin.BATCH=2", "--gin.LENGTHS={'inputs': 192, 'targets': 64}",
    "--gin.base/RunConfig.task_feature_lengths={'inputs': 0, 'targets': 256}",
    "--gin.smoke/ModelConfig.num_layers=1", "--gin.smoke/ModelConfig.d_model=32",
    "--gin.smoke/ModelConfig.d_ff=64", "--gin.smoke/ModelConfig.head_dim=8",
    "--gin.ul2r/CheckpointConfig.period=2",
    "--gin.EvalStageConfig.suites=('heldout_zs.add_three', 'heldin_zs.add_two')",
    "--gin.EvalStageConfig.max_examples=3", "--gin.EvalStageConfig.infilling_examples=3",
    "--gin.EvalStageConfig.lm_loss=True", "--gin.EvalStageConfig.copying=True",
]
MODELS = ("base", "ul2r", "flan", "flan_ul2r")


def _pipeline(model_dir, *extra):
    cmd = [sys.executable, "-m", "flan_ul2r.cli", "pipeline", *REDUCED, f"--gin.MODEL_DIR={model_dir}",
           *extra]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)


def _killed_in_ul2r(model_dir):
    """Starts the pipeline and SIGKILLs it once its UL2R stage has saved a checkpoint (before it ends)."""
    cmd = [sys.executable, "-m", "flan_ul2r.cli", "pipeline", *REDUCED, f"--gin.MODEL_DIR={model_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpts, deadline = model_dir / "ul2r" / "checkpoints", time.monotonic() + 900
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir()):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A pipeline killed (SIGKILL) in its UL2R stage after its first checkpoint, then run again to the end."""
    model_dir = tmp_path_factory.mktemp("pipeline")
    first = _killed_in_ul2r(model_dir)
    second = _pipeline(model_dir)
    return model_dir, first, second


@pytest.mark.slow
@pytest.mark.subprocess
def test_an_interrupted_stage_resumes_and_finished_stages_are_skipped(finished):
    model_dir, first, second = finished
    assert first == -signal.SIGKILL  # killed, not finished
    assert second.returncode == 0, second.stderr[-3000:]
    assert "stage 'base' is done" in second.stderr  # not trained again
    resumed = [int(line.rsplit("/", 1)[1]) for line in second.stderr.splitlines()
               if line.startswith(f"resuming from {model_dir / 'ul2r' / 'checkpoints'}/")]
    assert len(resumed) == 1 and 2 <= resumed[0] < 12 and resumed[0] % 2 == 0
    steps = [json.loads(x)["step"] for x in (model_dir / "ul2r" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(x)]
    assert sorted(set(steps)) == list(range(1, 13))
    assert steps.count(resumed[0] + 1) >= 1 and steps.count(1) == 1  # step 1 never trained again
    base_rows = (model_dir / "base" / "metrics.jsonl").read_text().splitlines()
    assert len(base_rows) == 6


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_finished_pipeline_rerun_is_a_no_op(finished):
    model_dir, _, _ = finished
    before = {p: p.stat().st_mtime for p in model_dir.rglob("*") if p.is_file() and "checkpoints" in p.parts}
    again = _pipeline(model_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(f"stage {s!r} is done" in again.stderr for s in ("base", "ul2r", "flan", "flan_ul2r"))
    assert {p: p.stat().st_mtime for p in before} == before


@pytest.mark.slow
@pytest.mark.subprocess
def test_every_artifact_exists_and_parses(finished):
    model_dir, _, _ = finished
    report = json.loads((model_dir / "report.json").read_text())
    assert "| metric | n | base | +UL2R | +Flan | +UL2R+Flan |" in (model_dir / "report.md").read_text()
    for png in ("loss_curves.png", "results.png"):
        assert (model_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in ("base", "ul2r", "flan", "flan_ul2r"):
        assert json.loads((model_dir / stage / "stage.json").read_text())["stage"] == stage
        assert (model_dir / stage / "checkpoints").is_dir()
    for m in MODELS:
        results = json.loads((model_dir / "eval" / m / "results.json").read_text())
        assert set(results["benchmarks"]) >= {"Heldout-ZS", "Heldin-ZS", "Infilling", "LM-Loss", "Copying"}
        loss = results["benchmarks"]["LM-Loss"]
        assert 0 < loss["ci_low"] <= loss["score"] <= loss["ci_high"] < 7  # nats per byte
        filled = model_dir / "eval" / m / "infilling" / "predictions" / "infilling.jsonl"
        rows = filled.read_text().splitlines()
        assert len(rows) == 3 and all("<extra_id_0>" in json.loads(r)["prompt"] for r in rows)
    assert {s["stage"] for s in report["ledger"]["stages"]} == {"base", "ul2r", "flan", "flan_ul2r"}


@pytest.mark.slow
@pytest.mark.subprocess
def test_report_table_is_the_stages_results_with_n_and_intervals(finished):
    model_dir, _, _ = finished
    report = json.loads((model_dir / "report.json").read_text())
    results = {m: json.loads((model_dir / "eval" / m / "results.json").read_text()) for m in MODELS}
    checked = 0
    for row in report["table"]:
        for m in MODELS:
            cell = row[m]
            assert set(cell) == {"score", "n", "ci_low", "ci_high"} and cell["n"] > 0, (row["metric"], m)
            assert cell["ci_low"] <= cell["score"] <= cell["ci_high"], (row["metric"], m, cell)
            if row["kind"] == "benchmark":
                expected = results[m]["benchmarks"][row["metric"]]
                assert (cell["n"], cell["ci_low"], cell["ci_high"]) == \
                    (expected["n"], expected["ci_low"], expected["ci_high"])
                expected = expected["score"]
            elif row["kind"] == "task":
                task, metric = row["metric"].rsplit(" ", 1)
                expected = results[m]["tasks"][task]["metrics"][metric]
            else:
                continue
            assert cell["score"] == expected or (np.isnan(cell["score"]) and np.isnan(expected))
            checked += 1
    assert checked >= 4 * 6
    pairs = {(c["metric"], c["a"], c["b"]) for c in report["comparisons"]}
    assert {("Infilling", "ul2r", "base"), ("Heldin-ZS", "flan", "base"), ("LM-Loss", "flan_ul2r", "flan"),
            ("Heldout-Avg", "flan_ul2r", "base"), ("Copying", "ul2r", "base")} <= pairs
    assert (model_dir / "report.md").read_text().split("\n")[2] == report["opening"]


def _matmul_params(params: dict) -> int:
    """N of PaLM's 6N, counted from the checkpoint's arrays (not from the config): every parameter but the
    input embedding table when an output head exists (a lookup, not a matmul; training/compute.py)."""
    import jax

    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = jax.tree_util.keystr(path)
        if name == "['embedding']" and "lm_head" in params:
            continue
        total += int(np.prod(np.shape(leaf)))
    return total


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_compute_ledger_adds_up(finished):
    import flan_ul2r

    model_dir, _, _ = finished
    report = json.loads((model_dir / "report.json").read_text())
    model = flan_ul2r.load_model(model_dir / "base" / "checkpoints" / "6")
    cfg = model.config
    n = _matmul_params(model.params)
    by_stage = {s["stage"]: s for s in report["ledger"]["stages"]}
    for stage, steps, batch, length in (("base", 6, 2, 256), ("ul2r", 12, 2, 256), ("flan", 2, 2, 256),
                                        ("flan_ul2r", 2, 2, 256)):
        tokens = steps * batch * length
        attention = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * length  # PaLM appendix B
        s = by_stage[stage]
        assert s["tokens"] == tokens
        assert s["flops"] == pytest.approx(tokens * (6 * n + attention), rel=1e-9)
    shares = report["ledger"]["percent_of_base_pretraining"]
    base = by_stage["base"]["flops"]
    assert shares["UL2R"] == pytest.approx(100 * by_stage["ul2r"]["flops"] / base)
    assert shares["UL2R + Flan (the Flan-U model)"] == pytest.approx(
        100 * (by_stage["ul2r"]["flops"] + by_stage["flan_ul2r"]["flops"]) / base)


@pytest.mark.parametrize("name, tokens, layers, preset", [("llama3_8b", 15e12, 32, "v5p-64"),
                                                           ("gemma_2b", 3e12, 18, None)])
def test_real_scale_pipeline_gins_configure_the_papers_recipe(name, tokens, layers, preset, monkeypatch):
    """The real-scale gins bind what U-PaLM section 2.4 and Flan Table 22 ran, for an imported model, and
    their ledger puts UL2R at its token share of the stated pretraining (1.31B tokens of 15T = 0.0087%)."""
    import gin

    import flan_ul2r.main.pipeline as cli
    import flan_ul2r.pipeline.run as run_lib
    from flan_ul2r.gin_utils import parse_gin
    from flan_ul2r.models.config import preset as model_preset
    from flan_ul2r.pipeline.ledger import imported_base_cost, stage_cost

    seen = {}
    monkeypatch.setattr(run_lib, "run_pipeline",
                        lambda cfg, operative_config=None: seen.setdefault("cfg", cfg))
    gin.clear_config()
    try:
        parse_gin([f"gin/pipelines/{name}.gin"], ["MODEL_DIR='/runs/x'", "HF_DIR='/models/m'",
                                                  "UL2R_VOCABULARY='hf:/models/m'"])
        cli.pipeline()
        topology = gin.query_parameter("%TOPOLOGY") if preset else None
        streamed = gin.query_parameter("ul2r_corpus.cache") is False  # per host, never cached whole
    finally:
        gin.clear_config()
    cfg = seen["cfg"]
    assert cfg.import_hf_dir == "/models/m" and cfg.pretrain is None and cfg.export_hf
    assert cfg.base_pretraining_tokens == tokens and topology == preset and streamed
    u, f = cfg.ul2r, cfg.flan
    assert (u.mixture_or_task_name, dict(u.task_feature_lengths), u.batch_size, u.train_steps) == \
        ("ul2r", {"inputs": 1024, "targets": 1024}, 32, 20000)
    opt = u.optimizer
    assert (opt.name, opt.learning_rate, opt.schedule) == ("adafactor", 1e-4, "cosine")
    assert opt.final_learning_rate == 1e-6
    assert (f.mixture_or_task_name, dict(f.task_feature_lengths), f.batch_size, f.train_steps) == \
        ("flan", {"inputs": 2048, "targets": 512}, 32, 40000)
    assert (f.optimizer.learning_rate, f.optimizer.schedule) == (3e-3, "constant")
    assert u.mesh.rules == f.mesh.rules == "fsdp" and u.model.dtype == "bfloat16"
    assert "flan_paper" in cfg.eval.suites
    shape = model_preset(name)
    assert shape.num_layers == layers
    base = imported_base_cost(shape, tokens, 2048)["flops"]
    ul2r = stage_cost("ul2r", shape, u.train_steps, u.batch_size, 2048, 0, 0).flops
    assert 100 * ul2r / base == pytest.approx(100 * 20000 * 32 * 2048 / tokens, rel=1e-9)
