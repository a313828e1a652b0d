"""The pipeline's report as evidence, on four scripted models run through the pipeline's own eval stage
(real held-in tasks, real prediction files): every cell carries its n and 95% interval, the paired
comparisons find what differs and nothing where two models are the same, the averages recompute from
the per-task scores, and report.md opens with its three sentences."""
import json
import math

import pytest

import flan_ul2r
import flan_ul2r.tasks.evals  # noqa: F401  (registers the held-in suites)
from flan_ul2r.evaluation.benchmarks import heldin
from flan_ul2r.pipeline import ledger as ledger_lib
from flan_ul2r.pipeline.config import EvalStageConfig
from flan_ul2r.pipeline.report import CELL_FIELDS, MODELS, write_report
from flan_ul2r.pipeline.run import eval_stage
from tests._scripted_model import ScriptedModel

PER_TASK = 4


def _answers() -> dict[str, str]:
    """Every held-in zero-shot and rank prompt -> its reference answer."""
    table = {}
    for task in heldin.held_in_tasks():
        for style in ("zs", "rank"):
            for ex in heldin.heldout.load(task, style, PER_TASK):
                table[ex.prompt] = ex.references[0]
    return table


def _model(knows: bool) -> ScriptedModel:
    """A model that answers every held-in query right (`knows`) or says nothing useful."""
    table = _answers() if knows else {}
    return ScriptedModel(lambda prompt, k: table.get(prompt, "I do not know"),
                         logprob=lambda prompt, cont: 0.0 if table.get(prompt) == cont else -1.0)


@pytest.fixture(scope="module")
def report(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("report")
    models = {"base": _model(False), "ul2r": _model(False), "flan": _model(True), "flan_ul2r": _model(True)}
    monkeypatch_module.setattr(flan_ul2r, "load_model", lambda checkpoint: models[checkpoint])
    cfg = EvalStageConfig(suites=("heldin_zs", "heldin_rank"), max_examples=PER_TASK, batch_size=8)
    results = {m: eval_stage(root, m, m, cfg) for m in MODELS}
    cost = ledger_lib.stage_cost("base", _tiny_config(), 10, 2, 64, 1.0, 1.0)
    book = ledger_lib.ledger([cost], cost.flops, "measured", {"UL2R": ["ul2r"]})
    return root, results, write_report(root, results, book, [], {}, "scripted")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _tiny_config():
    from flan_ul2r.models.config import ModelConfig

    return ModelConfig(vocab_size=362, num_layers=1, d_model=8, num_heads=1, num_kv_heads=1, head_dim=8,
                       d_ff=16)


@pytest.mark.slow
def test_every_cell_carries_n_and_its_interval(report):
    _, _, rep = report
    on_disk = json.loads(json.dumps(rep))
    assert {r["metric"] for r in on_disk["table"]} >= {"Heldin-ZS", "Heldin-Rank", "Heldin-Avg"}
    cells = 0
    for row in on_disk["table"]:
        for m in MODELS:
            c = row[m]
            assert set(c) == set(CELL_FIELDS) and c["n"] > 0, (row["metric"], m, c)
            assert c["ci_low"] <= c["score"] <= c["ci_high"], (row["metric"], m, c)
            cells += 1
    assert cells == 4 * len(on_disk["table"]) and cells >= 4 * (3 + 18 + 3)


def test_comparisons_find_the_difference_and_no_difference_between_equal_models(report):
    _, _, rep = report
    by = {(c["metric"], c["a"], c["b"]): c for c in rep["comparisons"]}
    assert set(rep["comparisons"][0]) >= {"metric", "a", "b", "diff", "ci_low", "ci_high", "significant", "n"}
    flan = by[("Heldin-ZS", "flan", "base")]
    assert flan["diff"] == pytest.approx(100.0) and flan["significant"] and flan["n"] == 18 * PER_TASK
    for same in (("Heldin-ZS", "ul2r", "base"), ("Heldin-Avg", "flan_ul2r", "flan")):
        c = by[same]
        assert c["diff"] == 0.0 and c["ci_low"] <= 0.0 <= c["ci_high"] and not c["significant"]


def test_the_average_row_is_the_mean_of_every_task_cell(report):
    _, results, rep = report
    row = next(r for r in rep["table"] if r["metric"] == "Heldin-Avg")
    for m in MODELS:
        scores = [t["score"] for t in results[m]["tasks"].values() if t["benchmark"].startswith("Heldin-")]
        assert len(scores) == 18 + 3
        assert row[m]["score"] == pytest.approx(sum(scores) / len(scores))
        assert row[m]["n"] == 21 * PER_TASK


def test_report_md_opens_with_what_moved_what_did_not_and_the_papers(report):
    root, _, rep = report
    text = (root / "report.md").read_text()
    opening = text.split("\n")[2]
    assert opening == rep["opening"]
    assert opening.startswith("What moved (paired 95% interval excludes 0): ")
    avg = (18 * 100.0 + 3 * 50.0) / 21  # every answer right vs none; rank: always vs by chance (ties)
    # the opening names the averages only; the per-style rows are in the table
    assert f"+Flan vs base: Heldin-Avg +{avg:.1f}" in opening and "Heldin-ZS" not in opening
    assert "What did not move (interval includes 0): +UL2R vs base: Heldin-Avg +0.0" in opening
    # the held-in claim is measured; no held-out, infilling or LM-loss rows were evaluated
    claim = "Flan should teach the tasks it trains on: here +Flan vs base on Heldin-Avg is "
    assert f"{claim}+{avg:.1f}" in opening
    assert "agrees" in opening and "Heldout" not in opening and "Infilling" not in opening
    assert "| Heldin-ZS | 72 | 0.00 [0.00, " in text and not math.isnan(rep["table"][0]["base"]["ci_low"])
    assert (root / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_opening_gives_a_loss_to_two_decimals_and_calls_a_rise_a_cost():
    from flan_ul2r.pipeline.summary import opening

    loss = {"a": "ul2r", "b": "base", "metric": "LM-Loss", "diff": 0.05, "ci_low": 0.02, "ci_high": 0.08,
            "significant": True, "lower_is_better": True}
    text = opening([loss])
    assert "+UL2R vs base: LM-Loss +0.05 (lower is better)" in text
    assert "on LM-Loss is +0.05 [0.02, 0.08], a cost." in text
    assert "a gain." in opening([{**loss, "diff": -0.05, "ci_low": -0.08, "ci_high": -0.02}])
