"""The runner on a scripted model (tests/_scripted_model.py): results.json, results.md and predictions JSONL
whose metrics recompute from the predictions, self-consistency, rank classification, length errors."""
import json
from pathlib import Path

import pytest

from flan_ul2r.evaluation.benchmarks import bbh, gsm8k, mmlu, tydiqa
from flan_ul2r.evaluation.evaluate import check_model, evaluate
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol
from flan_ul2r.evaluation.runner import EvalSettings, run_task
from tests._scripted_model import ScriptedModel

FIX = Path(__file__).parent / "fixtures" / "eval"
QUIET = EvalSettings(progress=False, batch_size=2)

# Scripted completions keyed by a phrase of the query (the last "Q:"/question of the prompt).
SCRIPT = {
    "Find the order of the factor group": " A\n",                                  # right (A)
    "The polynomial x^3": " (B) (x + 1)(x + 4)(x − 2)",                            # wrong (C)
    "Find the maximum possible order": "C. 30",                                    # right (C)
    "What is the date tomorrow": " Tomorrow is 12/25/1937. So the answer is (B).\n\nQ: extra",  # right
    "one week ago from today": " So the answer is (A).",                           # wrong (E)
    "Mikä on Suomen": " Helsinki, Suomi\n",                                        # EM no, F1 2/3? see test
    "ما هي عاصمة مصر": " القاهرة",                                                  # right
    "ما هي أكبر مدينة": " الإسكندرية",                                              # wrong
}


def scripted(prompt: str, k: int) -> str:
    query = prompt[prompt.rfind("Q: "):] if "Q: " in prompt else prompt[-300:]
    for key, out in SCRIPT.items():
        if key in query or key in prompt[-200:]:
            return out
    return " I do not know."


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_suite_files_and_metrics_recompute(tmp_path):
    tasks = [t for t in mmlu.tasks(FIX / "mmlu") if t.name == "mmlu_direct.abstract_algebra"]
    tasks += [t for t in bbh.tasks(FIX / "bbh") if t.name == "bbh_cot.date_understanding"]
    tasks += [t for t in tydiqa.tasks(FIX / "tydiqa") if t.name in ("tydiqa_direct.finnish",
                                                                    "tydiqa_direct.arabic")]
    model = ScriptedModel(scripted)
    summary, _ = evaluate(model, tasks, QUIET, out_dir=tmp_path, model_path="scripted", suite="mix")
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for name, task in on_disk["tasks"].items():
        rows = read_jsonl(tmp_path / "predictions" / f"{name}.jsonl")
        assert len(rows) == task["count"]
        recomputed = 100 * sum(r["correct"] for r in rows) / len(rows)
        assert task["metrics"]["exact_match"] == pytest.approx(recomputed)
        for r in rows:   # what the model said is on disk, next to what was extracted from it
            assert set(r) >= {"prompt", "output", "extracted", "reference", "correct"}
    mm = read_jsonl(tmp_path / "predictions/mmlu_direct.abstract_algebra.jsonl")
    assert [(r["extracted"], r["correct"]) for r in mm] == [("A", True), ("B", False), ("C", True)]
    assert mm[0]["output"] == " A"     # cut at the stop sequence "\n"
    bb = read_jsonl(tmp_path / "predictions/bbh_cot.date_understanding.jsonl")
    assert [r["extracted"] for r in bb] == ["(B)", "(A)"] and "Q: extra" not in bb[0]["output"]
    fi = read_jsonl(tmp_path / "predictions/tydiqa_direct.finnish.jsonl")[0]
    # "Helsinki, Suomi" vs "Helsinki": tokens [helsinki, suomi] vs [helsinki]: P 1/2, R 1, F1 2/3
    assert not fi["correct"] and fi["f1"] == pytest.approx(2 / 3)
    ar = on_disk["tasks"]["tydiqa_direct.arabic"]["metrics"]
    assert ar == {"exact_match": 50.0, "f1": 50.0}
    b = on_disk["benchmarks"]
    assert b["MMLU-Direct"]["score"] == pytest.approx(200 / 3) and b["MMLU-Direct"]["random"] == 25.0
    assert b["BBH-CoT"]["score"] == 50.0 and b["BBH-CoT"]["random"] == pytest.approx(100 / 6)
    assert b["TyDiQA-Direct"]["score"] == pytest.approx((0 + 50) / 2)   # macro over languages
    assert on_disk["normalized_average"]["value"] is None
    assert "MMLU-CoT" in on_disk["normalized_average"]["missing"]
    md = (tmp_path / "results.md").read_text()
    assert "## MMLU-Direct" in md and "| mmlu_direct.abstract_algebra | 3 | 66.67 |" in md
    assert "Normalized average: **n/a (missing: MMLU-CoT, BBH-Direct, MGSM-CoT)**" in md


def test_micro_average_weights_examples():
    p = Protocol("X", shape="text", aggregate="micro")
    a = EvalTask("a", p, lambda: [EvalExample("a0", "Q: yes", ("yes",))])
    b = EvalTask("b", p, lambda: [EvalExample(f"b{i}", "Q: no", ("yes",)) for i in range(3)])
    summary, _ = evaluate(ScriptedModel(lambda prompt, k: prompt[3:]), [a, b], QUIET)
    assert summary["benchmarks"]["X"]["score"] == 25.0     # 1 of 4 examples (macro would be 50)


def test_self_consistency_votes_over_samples():
    answers = {0: "So the answer is 17.", 1: "So the answer is 18.", 2: "I give up", 3: "The answer is $18.",
               4: "So the answer is 17."}
    model = ScriptedModel(lambda prompt, k: answers[k] if "Janet" in prompt[-400:] else "The answer is 0.")
    settings = EvalSettings(progress=False, num_samples=5, temperature=0.6, max_examples=2)
    res = run_task(model, gsm8k.tasks(FIX / "gsm8k")[0], settings)
    call = model.generate_calls[0]
    assert call["num_samples"] == 5 and call["temperature"] == 0.6
    row = res.predictions[0]
    assert row["sample_answers"] == ["17", "18", None, "18", "17"]
    assert row["extracted"] == "17" and not row["correct"]   # 17 vs 18: a 2-2 tie, 17 voted first
    # direct tasks never sample
    direct = run_task(model, EvalTask("d", Protocol("D"), lambda: [EvalExample("0", "x", ("0",))]), settings)
    assert model.generate_calls[-1]["num_samples"] == 1 and model.generate_calls[-1]["temperature"] == 0.0
    assert direct.predictions[0]["output"] == "The answer is 0."


def test_rank_classification_picks_the_best_scored_choice():
    p = Protocol("R", mode="rank", shape="option", metric="accuracy")
    days = ("Monday", "Tuesday", "Sunday")
    exs = [EvalExample("0", "Today is Monday. Tomorrow?", ("Tuesday",), days, 100 / 3),
           EvalExample("1", "Today is Friday. Tomorrow?", ("Saturday",), ("Saturday", "Friday"), 50.0)]
    logp = {"Monday": -3.0, "Tuesday": -1.0, "Sunday": -2.0, "Saturday": -4.0, "Friday": -0.5}
    model = ScriptedModel(scripted, logprob=lambda ctx, c: logp[c])
    res = run_task(model, EvalTask("r", p, lambda: exs), QUIET)
    assert [r["extracted"] for r in res.predictions] == ["Tuesday", "Friday"]
    assert res.metrics == {"accuracy": 50.0} and res.random == pytest.approx((100 / 3 + 50) / 2)
    assert res.predictions[0]["scores"] == [-3.0, -1.0, -2.0]


def test_prompt_ends_with_eos_for_prefix_lm_models():
    model = ScriptedModel(lambda p, k: "x", prefix_lm=True)
    run_task(model, EvalTask("t", Protocol("T"), lambda: [EvalExample("0", "hello", ("x",))]), QUIET)
    assert model.prompts_seen[0] == model.tokenize("hello") + [model.vocab.eos_id]
    model = ScriptedModel(lambda p, k: "x")
    run_task(model, EvalTask("t", Protocol("T"), lambda: [EvalExample("0", "hello", ("x",))]), QUIET)
    assert model.prompts_seen[0] == model.tokenize("hello")


def test_prompts_use_the_models_prompt_encoding():
    class WithBos(ScriptedModel):
        def encode_prompt(self, text):
            return [0] + self.tokenize(text)

    model = WithBos(lambda p, k: "x")
    run_task(model, EvalTask("t", Protocol("T"), lambda: [EvalExample("0", "hi", ("x",))]), QUIET)
    assert model.prompts_seen[0] == [0] + model.tokenize("hi")


def test_prompt_longer_than_the_model_is_an_error_naming_it():
    model = ScriptedModel(scripted, max_length=600)
    task = [t for t in mmlu.tasks(FIX / "mmlu") if t.name == "mmlu_direct.abstract_algebra"][0]
    # the byte-level model gets 4 bytes per token of MMLU-Direct's 8-token budget (prompt_plan.py)
    with pytest.raises(ValueError, match=r"max_length 600; nothing was decoded:\n  mmlu_direct.abstract_algeb"
                                         r"ra: 3 of 3 examples \(longest: example abstract_algebra/val/1, "
                                         r"prompt of \d+ tokens \+ 32 new tokens = \d+\)"):
        run_task(model, task, QUIET)
    assert model.generate_calls == []      # checked before decoding anything


def test_model_without_tokenizer_or_decoding():
    model = ScriptedModel(scripted)
    model.vocab = None
    with pytest.raises(ValueError, match="CHECKPOINT_PATH=/ckpt: no tokenizer found"):
        check_model(model, "CHECKPOINT_PATH=/ckpt")
    with pytest.raises(ValueError, match=r"lacks \['generate_batch', 'score'\]"):
        check_model(object.__new__(type("Old", (), {"tokenize": 1, "detokenize": 1})), "old")
