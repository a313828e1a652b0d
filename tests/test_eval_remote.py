"""Evaluation and pipeline files on remote storage (tests/fake_gcs.py, an in-memory gs://): benchmark
files are read from gs://, results, predictions, stage markers and the pipeline report are written there,
and nothing lands on the local disk."""
import json
import os
from pathlib import Path

import pytest

from flan_ul2r import fs
from flan_ul2r.evaluation.benchmarks import mmlu
from flan_ul2r.evaluation.evaluate import evaluate
from flan_ul2r.evaluation.infilling import evaluate_infilling, make_examples
from flan_ul2r.evaluation.runner import EvalSettings
from flan_ul2r.pipeline.report import write_report
from flan_ul2r.pipeline.stages import finished, mark_finished
from tests._scripted_model import ScriptedModel
from tests.fake_gcs import fake_gcs

FIX = Path(__file__).parent / "fixtures" / "eval"
BUCKET = "gs://flan-test-bucket"
ROOT = f"{BUCKET}/pipe"
TASK = "mmlu_direct.abstract_algebra"


@pytest.fixture()
def empty_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_eval_reads_benchmarks_from_and_writes_results_to_gcs(empty_cwd):
    with fake_gcs() as store:
        for f in (FIX / "mmlu").rglob("*"):
            if f.is_file():
                fs.path(f"{BUCKET}/mmlu/{f.relative_to(FIX / 'mmlu')}").write_bytes(f.read_bytes())
        remote = [t for t in mmlu.tasks(f"{BUCKET}/mmlu") if t.name == TASK]
        local = [t for t in mmlu.tasks(FIX / "mmlu") if t.name == TASK]
        assert [e.prompt for e in remote[0].load()] == [e.prompt for e in local[0].load()]
        model = ScriptedModel(lambda prompt, k: " A")
        settings = EvalSettings(progress=False, batch_size=2)
        summary, _ = evaluate(model, remote, settings, out_dir=f"{ROOT}/eval/base/mmlu", model_path="m",
                              suite="mmlu")
        assert fs.read_json(f"{ROOT}/eval/base/mmlu/results.json") == json.loads(json.dumps(summary))
        rows = fs.read_text(f"{ROOT}/eval/base/mmlu/predictions/{TASK}.jsonl")
        assert len(rows.splitlines()) == summary["tasks"][TASK]["count"]

        docs = [" ".join(f"w{d}_{i}" for i in range(40)) for d in range(5)]
        filled = evaluate_infilling(_Echo(), make_examples(docs, 5), out_dir=f"{ROOT}/eval/base/infilling")
        assert filled["tasks"]["infilling"]["count"] == 5
        assert len(fs.read_text(f"{ROOT}/eval/base/infilling/predictions/infilling.jsonl").splitlines()) == 5

        assert finished(ROOT, "ul2r") is None
        mark_finished(ROOT, "ul2r", {"checkpoint": f"{ROOT}/ul2r/checkpoints/4"})
        assert finished(ROOT, "ul2r") == {"stage": "ul2r", "checkpoint": f"{ROOT}/ul2r/checkpoints/4"}
        fs.write_text(f"{ROOT}/ul2r/metrics.jsonl", "".join(json.dumps({"step": s, "loss": 5.0 - s}) + "\n"
                                                             for s in (1, 2, 3)))
        ledger = {"stages": [], "base_pretraining_flops": 1.0, "base_pretraining_source": "test",
                  "percent_of_base_pretraining": {}}
        report = write_report(fs.path(ROOT), {"base": summary}, ledger, [{"stage": "ul2r"}],
                              {"ul2r": fs.path(f"{ROOT}/ul2r")}, "t")
        assert fs.read_json(f"{ROOT}/report.json")["title"] == report["title"] == "t"
        assert "| MMLU-Direct |" in fs.read_text(f"{ROOT}/report.md")
        for png in ("loss_curves.png", "results.png"):
            assert fs.read_bytes(f"{ROOT}/{png}")[:8] == b"\x89PNG\r\n\x1a\n"
        assert any(n.endswith("/pipe/report.md") for n in store.names())
    assert os.listdir(empty_cwd) == []


class _Echo:
    """Fills every blank with the word 'x' (the files are what is tested here)."""

    def __init__(self):
        from flan_ul2r.data.vocab.vocabularies import get_vocabulary

        self.vocab, self.max_length = get_vocabulary("byte"), 4096

    def infill_detailed(self, texts, **kwargs):
        from flan_ul2r.decoding.loaded_model import Infilled

        s0, s1 = self.vocab.sentinel_ids[:2]
        return [[Infilled(["x"], [s0, *self.vocab.encode("x"), s1])] for _ in texts]
