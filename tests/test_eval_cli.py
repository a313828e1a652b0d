"""`flan-ul2r eval`: eval tasks and suites in seqio's registry, the verb's files on a scripted model
(in-process, load_model patched), and its bad-input messages."""
import contextlib
import io
import json
from pathlib import Path

import gin
import pytest
import seqio

import flan_ul2r
import flan_ul2r.tasks
from flan_ul2r.cli import main as cli_main
from flan_ul2r.data.flan.eval_prompts import eval_prompts
from flan_ul2r.evaluation.benchmarks import heldout
from flan_ul2r.evaluation.protocol import Protocol
from flan_ul2r.evaluation.seqio_tasks import eval_task, suite_tasks
from tests._scripted_model import ScriptedModel

flan_ul2r.tasks.import_all()
FIX = Path(__file__).parent / "fixtures" / "eval"


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_suites_and_tasks_are_in_seqio():
    held = seqio.get_mixture_or_task("heldout")
    assert isinstance(held, seqio.Mixture)
    assert {t.name.split(".")[1] for t in held.tasks} == {t.name for t in heldout.held_out_tasks()}
    navigate = seqio.get_mixture_or_task("bbh_cot.navigate")
    assert isinstance(navigate.postprocessor, Protocol) and navigate.postprocessor.benchmark == "BBH-CoT"
    paper = {eval_task(n).protocol.benchmark for n in suite_tasks("flan_paper")}
    assert paper == {"MMLU-Direct", "MMLU-CoT", "BBH-Direct", "BBH-CoT", "TyDiQA-Direct", "MGSM-CoT"}
    assert len(suite_tasks("bbh")) == 54 and len(suite_tasks("mmlu")) == 114
    with pytest.raises(ValueError, match="EVAL_SUITE='nope' is not a registered eval suite or task.*heldout"):
        suite_tasks("nope")


def test_seqio_dataset_roundtrips_the_examples():
    task = next(t for t in heldout.held_out_tasks() if t.name == "weekday_after")
    direct = heldout.load(task, "fs", 100)                       # eval_data.heldout_examples default
    via_seqio = eval_task("heldout_fs.weekday_after").load()
    assert via_seqio == direct
    ds = seqio.get_mixture_or_task("heldout_fs.weekday_after").get_dataset(
        sequence_length=None, split="validation", shuffle=False, num_epochs=1)
    first = next(ds.as_numpy_iterator())
    assert first["inputs"].decode() == direct[0].prompt
    assert first["targets"].decode() == direct[0].references[0]
    # the protocol is the seqio postprocessor; the metric fn scores postprocessed outputs
    t = seqio.get_mixture_or_task("heldout_fs.weekday_after")
    out = t.postprocessor(b"It will be " + first["targets"] + b".", example=first, is_target=False)
    assert out == first["targets"].decode()
    assert t.metric_fns[0]([first["targets"]], [out]) == {"exact_match": 100.0}


def answer(prompt: str, k: int) -> str:
    return "So the answer is 7." if "step by step" in prompt[-40:] else "7"


def scripted_loader(path, dtype="float32"):
    return ScriptedModel(answer, logprob=lambda context, continuation: -len(continuation))


@pytest.fixture(scope="module")
def heldout_run(tmp_path_factory):
    """`flan-ul2r eval` on the default suite, 3 examples a task, with a scripted model that records every
    prompt it generates from or scores: (exit code, stdout, checkpoint dir, prompts the model was given)."""
    path, seen, stdout = tmp_path_factory.mktemp("heldout_eval"), set(), io.StringIO()

    def generate(prompt, k):
        seen.add(prompt)
        return answer(prompt, k)

    def score(context, continuation):
        seen.add(context)
        return -len(continuation)

    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setattr(flan_ul2r, "load_model", lambda p, dtype="float32": ScriptedModel(generate, logprob=score))
        gin.clear_config()
        rc = cli_main(["eval", "--gin_file=gin/runs/eval.gin", f"--gin.CHECKPOINT_PATH={path}",
                       f"--gin.EVAL_OUTPUT_DIR={path / 'out'}", "--gin.MAX_EXAMPLES=3",
                       "--gin.evaluate_checkpoint.progress=False"])
        gin.clear_config()
    return rc, stdout.getvalue(), path, seen


@pytest.mark.slow
def test_eval_verb_writes_results(heldout_run):
    rc, stdout, tmp_path, _ = heldout_run
    assert rc == 0
    printed = json.loads(stdout.strip().splitlines()[-1])
    res = json.loads((tmp_path / "out/results.json").read_text())
    assert res["suite"] == "heldout" and res["model_path"] == str(tmp_path)
    assert set(res["tasks"]) == set(suite_tasks("heldout"))
    assert printed["benchmarks"] == {k: round(v["score"], 2) for k, v in res["benchmarks"].items()}
    for name, t in res["tasks"].items():
        lines = (tmp_path / "out/predictions" / f"{name}.jsonl").read_text().splitlines()
        rows = [json.loads(x) for x in lines]
        key = t["primary_metric"]
        assert len(rows) == t["count"] == 3
        assert t["metrics"][key] == pytest.approx(100 * sum(r["correct"] for r in rows) / 3)
        assert all(r["correct"] == (r["extracted"] is not None and r["extracted"] == r["reference"])
                   for r in rows if t["mode"] == "generate" and "option" not in name)
    assert "## Heldout-ZS" in (tmp_path / "out/results.md").read_text()


@pytest.mark.slow
def test_eval_scores_the_data_side_eval_prompts(heldout_run):
    """One held-out renderer: what `flan-ul2r eval` scores (its predictions and what the model was given)
    is `flan_ul2r.data.flan.eval_prompts.eval_prompts`, as the README documents, in every style."""
    rc, _, tmp_path, seen = heldout_run
    assert rc == 0
    styles = set()
    for name in suite_tasks("heldout"):
        style, task = name.removeprefix("heldout_").split(".")
        lines = (tmp_path / "out/predictions" / f"{name}.jsonl").read_text().splitlines()
        rows = [json.loads(x) for x in lines]
        documented = eval_prompts(task, style, limit=3)
        assert [r["prompt"] for r in rows] == [p["inputs"] for p in documented], name
        assert [r["reference"] for r in rows] == [p["answer"] for p in documented], name
        assert {p["inputs"] for p in documented} <= seen, name
        styles.add(style)
    assert styles == {"zs", "fs", "cot", "rank"}


@pytest.mark.slow
def test_eval_help_and_bad_inputs(tmp_path, capsys, monkeypatch):
    assert cli_main(["eval", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out
    base = ["eval", "--gin_file=gin/runs/eval.gin", "--gin.evaluate_checkpoint.progress=False"]
    assert cli_main(base + ["--gin.CHECKPOINT_PATH=/nonexistent/ckpt"]) == 1
    assert "CHECKPOINT_PATH=/nonexistent/ckpt: no such directory" in capsys.readouterr().err
    gin.clear_config()
    assert cli_main(base + [f"--gin.CHECKPOINT_PATH={tmp_path}", "--gin.EVAL_SUITE=heldot"]) == 2
    assert "EVAL_SUITE='heldot' is not a registered eval suite or task; did you mean 'heldout'" in \
        capsys.readouterr().err
    gin.clear_config()
    monkeypatch.setattr(flan_ul2r, "load_model", scripted_loader)
    assert cli_main(base + [f"--gin.CHECKPOINT_PATH={tmp_path}", "--gin.EVAL_SUITE=mmlu_direct",
                            f"--gin.EVAL_OUTPUT_DIR={tmp_path / 'o'}"]) == 1
    assert "MMLU_DIR is not set" in capsys.readouterr().err
    gin.clear_config()
    assert cli_main(base + [f"--gin.CHECKPOINT_PATH={tmp_path}", "--gin.EVAL_SUITE=bbh_direct.navigate",
                            f"--gin.BBH_DIR={FIX / 'bbh'}", f"--gin.EVAL_OUTPUT_DIR={tmp_path / 'o'}"]) == 1
    assert "bbh/navigate.json: missing file" in capsys.readouterr().err


def test_default_output_dir():
    from flan_ul2r.main.eval import default_output_dir

    assert default_output_dir("/runs/a/checkpoints/200", "bbh") == Path("/runs/a/eval/200/bbh")
    assert default_output_dir("/models/Llama-3.2-1B", "heldout") == Path.cwd() / "eval/Llama-3.2-1B/heldout"


def _readme_eval_commands() -> list[list[str]]:
    """The `flan-ul2r eval` commands of the README's section "Evaluate a checkpoint", as argv lists."""
    import shlex

    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("## Evaluate a checkpoint"):]
    block = section[section.index("```") + 3: section.index("```", section.index("```") + 3)]
    return [shlex.split(c)[1:] for c in block.replace("\\\n", " ").splitlines() if c.startswith("flan-ul2r")]


class SmokeSized(ScriptedModel):
    """The README's Flan smoke checkpoint as the evaluator sees it: byte vocabulary, BOS-first prompts,
    prefix-LM (prompts end with EOS), 128 + 128 tokens of context."""

    def encode_prompt(self, text):
        return [self.vocab.bos_id] + self.tokenize(text)


@pytest.mark.slow
def test_the_readme_eval_example_runs_on_the_readme_smoke_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(flan_ul2r, "load_model",
                        lambda path, dtype="float32": SmokeSized(answer, max_length=256, prefix_lm=True,
                                                                 logprob=lambda c, x: -len(x)))
    argv = _readme_eval_commands()[0]
    assert "--gin.CHECKPOINT_PATH=/tmp/flan_smoke/checkpoints/50" in argv
    argv = [a.replace("/tmp/flan_smoke/checkpoints/50", str(tmp_path)) for a in argv]
    rc = cli_main(argv + [f"--gin.EVAL_OUTPUT_DIR={tmp_path / 'out'}", "--gin.MAX_EXAMPLES=4",
                          "--gin.evaluate_checkpoint.progress=False"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "out/results.json").read_text())
    assert res["complete"] and res["too_long"]["setting"] == "skip"
    skipped = res["too_long"]["skipped"]
    assert all(skipped.get(n) == 4 for n in res["tasks"] if n.startswith("heldout_cot."))  # no CoT fits
    assert sum(t["count"] for n, t in res["tasks"].items() if n.startswith("heldout_zs.")) > 0
    assert "Heldout-ZS" in res["benchmarks"]


@pytest.mark.slow
def test_too_long_budget_split_and_styles_are_eval_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(flan_ul2r, "load_model",
                        lambda path, dtype="float32": SmokeSized(answer, max_length=1010, prefix_lm=True))
    base = ["eval", "--gin_file=gin/runs/eval.gin", f"--gin.CHECKPOINT_PATH={tmp_path}",
            "--gin.evaluate_checkpoint.progress=False", f"--gin.MMLU_DIR={FIX / 'mmlu'}",
            "--gin.EVAL_SUITE='mmlu_direct.abstract_algebra'"]
    assert cli_main(base + [f"--gin.EVAL_OUTPUT_DIR={tmp_path / 'a'}"]) == 1
    err = capsys.readouterr().err
    assert "mmlu_direct.abstract_algebra: 2 of 3 examples" in err and "--gin.TOO_LONG" in err
    gin.clear_config()
    assert cli_main(base + [f"--gin.EVAL_OUTPUT_DIR={tmp_path / 'b'}", "--gin.TOO_LONG='truncate_left'",
                            "--gin.MAX_NEW_TOKENS=5"]) == 0
    res = json.loads((tmp_path / "b/results.json").read_text())
    assert res["too_long"] == {"setting": "truncate_left", "skipped": {},     # 1112 + 5 > 1010 only
                               "truncated": {"mmlu_direct.abstract_algebra": 1}}
    assert res["settings"]["max_new_tokens"] == 5
    assert res["tasks"]["mmlu_direct.abstract_algebra"]["count"] == 3
    gin.clear_config()
    assert cli_main(base + [f"--gin.EVAL_OUTPUT_DIR={tmp_path / 'c'}", "--gin.MMLU_SPLIT='test'",
                            "--gin.MAX_NEW_TOKENS=5"]) == 0
    rows = (tmp_path / "c/predictions/mmlu_direct.abstract_algebra.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in rows] == ["abstract_algebra/test/0", "abstract_algebra/test/1"]
    gin.clear_config()
    assert cli_main(base + ["--gin.evaluate_checkpoint.too_long='cut'"]) == 1
    assert "TOO_LONG='cut': use one of ('error', 'skip', 'truncate_left')" in capsys.readouterr().err
    gin.clear_config()
    assert cli_main(base + [f"--gin.EVAL_OUTPUT_DIR={tmp_path / 'c'}", "--gin.MMLU_SPLIT='validation'"]) == 1
    assert "MMLU_SPLIT='validation': use one of ('val', 'test', 'dev')" in capsys.readouterr().err
    gin.clear_config()
    assert cli_main(["eval", "--help"]) == 0
    usage = capsys.readouterr().out
    assert "MMLU_SPLIT" in usage and "'test'" in usage and "TOO_LONG" in usage and "heldout_zs" in usage
    assert suite_tasks("heldout_zs") == [n for n in suite_tasks("heldout") if n.startswith("heldout_zs.")]
