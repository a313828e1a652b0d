"""lm-evaluation-harness as a second door: our `flan-ul2r` LM runs local-JSONL lm-eval tasks end to end
(multiple choice -> loglikelihood, generate_until, loglikelihood_rolling), offline."""
import math
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

from tests._scripted_model import ScriptedModel  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "eval" / "lm_eval"
CAPITALS = {"France": "Paris", "Italy": "Oslo", "Norway": "Oslo"}   # the scripted model is wrong on Italy
SAYS = {"France": "Paris", "Italy": "Rome", "Norway": "Bergen"}     # ... and here wrong on Norway

TASKS_YAML = """
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
"""


def write_tasks(tmp_path: Path) -> None:
    caps, text = FIX / "capitals.jsonl", FIX / "text.jsonl"
    (tmp_path / "mc.yaml").write_text(TASKS_YAML.format(name="fu_capitals_mc", data=caps) + """
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
""")
    (tmp_path / "gen.yaml").write_text(TASKS_YAML.format(name="fu_capitals_gen", data=caps) + """
output_type: generate_until
doc_to_text: "Q: {{question}}\\nA:"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 16
  do_sample: false
metric_list:
  - metric: exact_match
""")
    (tmp_path / "roll.yaml").write_text(TASKS_YAML.format(name="fu_text_ppl", data=text) + """
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
""")


def country(text: str) -> str:
    return next(c for c in CAPITALS if c in text)


def answer(prompt: str, k: int) -> str:
    return SAYS[country(prompt)] + "\nQ: Capital of Spain?"


def logprob(context: str, continuation: str) -> float:
    if continuation.strip() in ("Paris", "Rome", "Oslo"):
        return 0.0 if CAPITALS[country(context)] == continuation.strip() else -5.0
    return -float(len(continuation.encode()))        # rolling: -1 per byte (byte vocabulary)


@pytest.mark.slow
def test_lm_eval_runs_local_tasks_end_to_end(tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from flan_ul2r.evaluation.lm_eval_backend import FlanUL2RLM

    write_tasks(tmp_path)
    lm = FlanUL2RLM(model=ScriptedModel(answer, logprob=logprob), batch_size=2)
    tasks = TaskManager(include_path=str(tmp_path), include_defaults=False)  # only this folder's tasks
    out = lm_eval.simple_evaluate(model=lm, tasks=["fu_capitals_mc", "fu_capitals_gen", "fu_text_ppl"],
                                  task_manager=tasks, log_samples=True)
    r = out["results"]
    assert r["fu_capitals_mc"]["acc,none"] == pytest.approx(2 / 3)       # France, Norway right
    assert r["fu_capitals_gen"]["exact_match,none"] == pytest.approx(2 / 3)   # France, Italy right
    gen = [s["resps"][0][0] for s in out["samples"]["fu_capitals_gen"]]
    assert sorted(gen) == ["Bergen", "Paris", "Rome"]                  # cut at "\n"
    # "a b c" (5 bytes, 3 words) and "hello world" (11 bytes, 2 words) at -1 nat per byte:
    # word perplexity exp(16 / 5), byte perplexity exp(16 / 16)
    assert r["fu_text_ppl"]["word_perplexity,none"] == pytest.approx(math.exp(16 / 5))
    assert r["fu_text_ppl"]["byte_perplexity,none"] == pytest.approx(math.e)


def test_context_longer_than_the_model_is_an_error():
    from lm_eval.api.instance import Instance

    from flan_ul2r.evaluation.lm_eval_backend import FlanUL2RLM

    lm = FlanUL2RLM(model=ScriptedModel(answer, logprob=logprob, max_length=10))
    req = Instance("loglikelihood", {}, ("Capital of France?", " Paris"), 0)
    with pytest.raises(ValueError, match=r"request of 24 tokens \(context \+ continuation\) > the model's "
                                         r"max_length 10"):
        lm.loglikelihood([req])


@pytest.mark.slow
def test_cli_registers_the_model(tmp_path):
    from flan_ul2r.main.lm_eval_cli import main

    write_tasks(tmp_path)
    with pytest.raises(FileNotFoundError, match="checkpoint=/nonexistent/ckpt: no such directory"):
        main(["--model", "flan-ul2r", "--model_args", "checkpoint=/nonexistent/ckpt", "--tasks",
              "fu_capitals_mc", "--include_path", str(tmp_path)])
