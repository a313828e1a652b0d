"""Evaluation runs that survive real suites: every task's lengths are planned before anything is decoded
(too_long = error / skip / truncate_left), new-token budgets follow the vocabulary and the exemplars, results
are written task by task and a killed run resumes without recomputing finished tasks."""
import json
from pathlib import Path

import pytest

from flan_ul2r.data.flan.suite.tasks import generate
from flan_ul2r.data.flan.templates import render
from flan_ul2r.evaluation import resume
from flan_ul2r.evaluation.benchmarks import bbh, gsm8k, heldout, mmlu, tydiqa
from flan_ul2r.evaluation.evaluate import evaluate
from flan_ul2r.evaluation.prompt_plan import PromptsTooLong, is_byte_level, new_token_budget, plan_task
from flan_ul2r.evaluation.runner import EvalSettings
from tests._scripted_model import ScriptedModel

FIX = Path(__file__).parent / "fixtures" / "eval"
QUIET = dict(progress=False, batch_size=2)


def _task(tasks, name):
    return next(t for t in tasks if t.name == name)


def suite(root=FIX):
    """Three tasks of different lengths: MMLU 5-shot (968-1110 bytes), BBH 3-shot CoT (1371-1427 bytes +
    a CoT budget) and TyDiQA 1-shot (about 200 bytes)."""
    return [_task(mmlu.tasks(root / "mmlu"), "mmlu_direct.abstract_algebra"),
            _task(bbh.tasks(root / "bbh"), "bbh_cot.date_understanding"),
            _task(tydiqa.tasks(root / "tydiqa"), "tydiqa_direct.finnish")]


def answer(prompt, k):
    return " So the answer is (B)." if "step by step" in prompt[-30:] else " A\n"


class WordModel(ScriptedModel):
    """A subword-like vocabulary: one token per whitespace-separated word."""

    def tokenize(self, text):
        return [3 + hash(w) % 300 for w in text.split()]


def test_an_over_long_suite_stops_before_decoding_and_names_every_task():
    model = ScriptedModel(answer, max_length=1100)
    with pytest.raises(PromptsTooLong) as e:
        evaluate(model, suite(), EvalSettings(**QUIET))
    message = str(e.value)
    assert "3 prompt(s) in 2 task(s) do not fit the model's max_length 1100; nothing was decoded" in message
    assert "mmlu_direct.abstract_algebra: 1 of 3 examples (longest: example abstract_algebra/val/1" in message
    assert "bbh_cot.date_understanding: 2 of 2 examples" in message and "tydiqa" not in message
    assert "--gin.TOO_LONG" in message and model.generate_calls == []


def test_skip_leaves_out_the_over_long_examples_and_writes_every_other_result(tmp_path):
    model = ScriptedModel(answer, max_length=1100)
    summary, _ = evaluate(model, suite(), EvalSettings(too_long="skip", **QUIET), out_dir=tmp_path)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["complete"] and on_disk["too_long"] == {
        "setting": "skip", "truncated": {},
        "skipped": {"mmlu_direct.abstract_algebra": 1, "bbh_cot.date_understanding": 2}}
    tasks = on_disk["tasks"]
    assert [tasks[n]["count"] for n in tasks] == [2, 0, 1]
    assert tasks["mmlu_direct.abstract_algebra"]["skipped_ids"] == ["abstract_algebra/val/1"]
    for name in tasks:
        rows = (tmp_path / "predictions" / f"{name}.jsonl").read_text().splitlines()
        assert len(rows) == tasks[name]["count"]
    assert "Left out as longer than the model's max_length" in (tmp_path / "results.md").read_text()


def test_truncate_left_drops_the_oldest_exemplars_then_the_left_of_the_prompt(tmp_path):
    model = ScriptedModel(answer, max_length=1100)
    settings = EvalSettings(too_long="truncate_left", **QUIET)
    summary, results = evaluate(model, suite(), settings, out_dir=tmp_path)
    mm = {r["id"]: r for r in results[0].predictions}
    row = mm["abstract_algebra/val/1"]
    assert row["truncated"] == {"shots_dropped": 1, "tokens_cut": 0}
    full = mmlu.load(FIX / "mmlu", "abstract_algebra")[1]
    assert row["prompt"] == full.parts[0] + "".join(full.parts[2:])   # header, exemplars 2-5, the query
    assert "truncated" not in mm["abstract_algebra/val/0"]
    # BBH-CoT's budget (1536 bytes: 384 tokens x 4) alone exceeds 1100: nothing can be cut to fit
    assert summary["too_long"]["skipped"] == {"bbh_cot.date_understanding": 2}
    assert summary["too_long"]["truncated"] == {"mmlu_direct.abstract_algebra": 1}
    # with room for no exemplar at all, the left of the query itself is cut (BOS-less model: no token kept)
    small = ScriptedModel(answer, max_length=200)
    plan = plan_task(small, suite()[0], mmlu.load(FIX / "mmlu", "abstract_algebra"), too_long="truncate_left")
    ids = plan.prompts[1]
    assert len(ids) == 200 - plan.budget and plan.truncated["abstract_algebra/val/1"]["shots_dropped"] == 5
    assert small.detokenize(ids).endswith("(x - 1)(x − 4)(x − 2)\nAnswer:")


def test_budgets_scale_for_byte_vocabularies_and_cover_the_longest_exemplar():
    byte, word = ScriptedModel(answer), WordModel(answer)
    assert is_byte_level(byte) and not is_byte_level(word)
    task = gsm8k.tasks(FIX / "gsm8k")[0]
    examples = gsm8k.load(FIX / "gsm8k")
    assert new_token_budget(word, task, examples) == 256            # the protocol's budget in tokens
    assert new_token_budget(byte, task, examples) == 1024           # 4 bytes per token
    # a long gold solution in GSM8K's style (more than 256 bytes, like 589 of the 1,319 test solutions)
    solution = ("She bought 3 packs of 24 cupcakes, so 3 * 24 = 72 cupcakes. She gave 2 cupcakes to each "
                "of the 18 students, so 2 * 18 = 36 cupcakes. She gave 5 to the teachers and 4 to the "
                "principal, so 5 + 4 = 9 cupcakes. That is 36 + 9 = 45 cupcakes given away. She has "
                "72 - 45 = 27 left. She sells them for $1.50 each, which makes 27 * 1.5 = $40.50. The "
                "answer is 40.5.")
    assert 256 < len(solution.encode()) <= new_token_budget(byte, task, examples)
    # BBH geometric_shapes: the exemplar rationales are longer than BBH-CoT's 384 tokens for a byte model
    shapes = bbh.tasks(FIX / "bbh")
    cot = _task(shapes, "bbh_cot.geometric_shapes")
    exs = cot.load()
    longest = max(exs[0].exemplar_targets, key=len)
    for model in (byte, word):
        need = len(model.tokenize(longest))
        assert new_token_budget(model, cot, exs) >= 1.5 * need
    assert len(byte.tokenize(longest)) > 384 * 4 / 1.5 and new_token_budget(byte, cot, exs) > 384 * 4
    assert new_token_budget(byte, cot, exs, override=50) == 50       # MAX_NEW_TOKENS


def test_every_heldout_answer_and_chain_of_thought_fits_its_byte_budget():
    for task in heldout.held_out_tasks():
        for i, ex in enumerate(generate(task, 100, "validation")):
            assert len(str(ex["answer"]).encode()) + 1 <= heldout.ANSWER_TOKENS * 4, (task.name, ex)  # + EOS
            if not ex.get("rationale"):
                continue
            t = i % len(task.templates)
            _, target = render(ex, task.templates[t], "fs_cot", (), task=task.name, template_index=t)
            assert len(target.encode()) <= heldout.COT_TOKENS * 4, (task.name, target)


def _copy_fixtures(tmp_path):
    import shutil

    for name in ("mmlu", "bbh", "tydiqa"):
        shutil.copytree(FIX / name, tmp_path / "data" / name)
    return tmp_path / "data"


class Killed(Exception):
    pass


def test_a_killed_run_resumes_without_recomputing_finished_tasks(tmp_path):
    data, out = _copy_fixtures(tmp_path), tmp_path / "out"
    settings = EvalSettings(**QUIET)

    def dies_on_bbh(prompt, k):
        if "step by step" in prompt[-30:]:
            raise Killed("preempted")
        return answer(prompt, k)

    with pytest.raises(Killed):
        evaluate(ScriptedModel(dies_on_bbh), suite(data), settings, out_dir=out, model_path="m")
    partial = json.loads((out / "results.json").read_text())
    assert not partial["complete"] and list(partial["tasks"]) == ["mmlu_direct.abstract_algebra"]
    assert partial["pending_tasks"] == ["bbh_cot.date_understanding", "tydiqa_direct.finnish"]

    model = ScriptedModel(answer)
    summary, _ = evaluate(model, suite(data), settings, out_dir=out, model_path="m")
    assert [c["n"] for c in model.generate_calls] == [2, 1]            # BBH and TyDiQA only
    (out / "tasks" / "tydiqa_direct.finnish.json").unlink()          # killed between its two files
    model = ScriptedModel(answer)
    evaluate(model, suite(data), settings, out_dir=out, model_path="m")
    assert [c["n"] for c in model.generate_calls] == [1]
    clean, _ = evaluate(ScriptedModel(answer), suite(data), settings, out_dir=tmp_path / "clean",
                        model_path="m")
    for key in ("benchmarks", "num_examples", "complete"):
        assert summary[key] == clean[key]
    again = ScriptedModel(answer)
    evaluate(again, suite(data), settings, out_dir=out, model_path="m")
    assert again.generate_calls == []                                   # all done: nothing recomputed

    changed = ScriptedModel(answer)                                     # another budget: everything anew
    evaluate(changed, suite(data), EvalSettings(max_new_tokens=40, **QUIET), out_dir=out, model_path="m")
    assert len(changed.generate_calls) == 3
    path = data / "tydiqa" / tydiqa.FILES["dev"]                        # an edited data file: that task
    path.write_text(path.read_text().replace("Suomen pääkaupunki?", "Suomen suurin kaupunki?"))
    edited = ScriptedModel(answer)
    evaluate(edited, suite(data), EvalSettings(max_new_tokens=40, **QUIET), out_dir=out, model_path="m")
    assert [c["n"] for c in edited.generate_calls] == [1]


def test_the_fingerprint_follows_the_weights():
    import numpy as np

    from flan_ul2r.api import LoadedModel
    from flan_ul2r.models import preset

    cfg = preset("tiny", num_layers=1)

    def loaded(seed):
        rng = np.random.default_rng(seed)
        params = {"embedding": rng.normal(size=(512, 64)).astype(np.float32),
                  "layers": {"mlp": {"up": {"kernel": rng.normal(size=(1, 64, 192)).astype(np.float32)}}}}
        return LoadedModel(cfg, params, None)

    a, b = resume.model_key(loaded(0), "/ckpt/1"), resume.model_key(loaded(1), "/ckpt/1")
    assert a == resume.model_key(loaded(0), "/ckpt/1") and a["params"] != b["params"]
