"""Evaluation during training: validation loss every `eval_period` steps (checked against a numpy
recomputation from the saved params), tasks without a validation split, and an eval suite on the
current params (scripted decoding)."""
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest

import flan_ul2r
import flan_ul2r.tasks.evals  # noqa: F401 - registers the eval tasks
import flan_ul2r.tasks.flan  # noqa: F401 - registers flan_<task> (train + validation splits)
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.models.config import preset
from flan_ul2r.models.decoder import Decoder
from flan_ul2r.training.config import CheckpointConfig, ModelSpec, OptimizerConfig, RunConfig
from flan_ul2r.training.periodic_eval import PeriodicEval
from flan_ul2r.training.run import run
from tests._scripted_model import ScriptedModel

SHAPE = preset("tiny", vocab_size=362, num_layers=1, d_model=16, num_heads=2, num_kv_heads=1, head_dim=8,
               d_ff=32)
LENGTHS = {"inputs": 64, "targets": 16}
Z_LOSS = 1e-4


def config(model_dir, task, **kw):
    return RunConfig(model_dir=str(model_dir), mixture_or_task_name=task, task_feature_lengths=LENGTHS,
                     train_steps=2, batch_size=8, model=ModelSpec(shape=SHAPE), z_loss=Z_LOSS,
                     optimizer=OptimizerConfig(name="adamw", learning_rate=1e-2),
                     checkpoint=CheckpointConfig(period=2), progress=True, **kw)


def numpy_loss(params, batches) -> float:
    """(cross-entropy + z-loss) per target token, from dense logits, in numpy."""
    model, total, count = Decoder(SHAPE), 0.0, 0.0
    for b in batches:
        logits = model.apply({"params": params}, b["decoder_input_tokens"], positions=b["decoder_positions"],
                             segment_ids=b["decoder_segment_ids"],
                             causal_attention=b["decoder_causal_attention"])
        logits = np.asarray(logits, np.float64)
        lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        target_logit = np.take_along_axis(logits, b["decoder_target_tokens"][..., None], -1)[..., 0]
        w = b["decoder_loss_weights"]
        total += float(((lse - target_logit) * w + Z_LOSS * lse ** 2 * w).sum())
        count += float(w.sum())
    return total / count


@pytest.mark.slow
def test_validation_loss_every_period(tmp_path):
    run(config(tmp_path, "flan_add_two", eval_period=1, eval_batches=2))
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/loss" in r]
    assert [r["step"] for r in evals] == [1, 2]
    assert all("loss" not in r for r in evals) and (tmp_path / "loss.png").is_file()
    params = flan_ul2r.load_model(tmp_path / "checkpoints" / "2").params
    data = make_train_iterator("flan_add_two", LENGTHS, 8, seed=0, split="validation")
    expected = numpy_loss(jax.device_get(params), [next(data) for _ in range(2)])
    assert evals[1]["eval/loss"] == pytest.approx(expected, rel=1e-4)
    assert evals[1]["eval/loss"] != pytest.approx(evals[0]["eval/loss"], rel=1e-3)   # params moved


def test_task_without_validation_split_is_reported_once(tmp_path, capsys):
    from flan_ul2r.data.ul2.cached_tasks import array_corpus, register_ul2r_mixture
    from flan_ul2r.data.vocab.vocabularies import ByteVocabulary

    vocab = ByteVocabulary()
    docs = [vocab.encode(f"document {i} " * 40) for i in range(20)]
    register_ul2r_mixture("train_only_toy", array_corpus(docs), vocab, splits=("train",))
    evaluator = PeriodicEval(config(tmp_path, "train_only_toy", eval_period=1), trainer=None)
    assert "train_only_toy' has no validation split" in capsys.readouterr().err
    assert not any(evaluator.due(step) for step in range(1, 5))     # nothing to run: no empty eval rows


def adds_up(prompt: str, k: int) -> str:
    return str(sum(int(x) for x in re.findall(r"\d+", prompt.strip().splitlines()[-1])))


def test_eval_suite_on_current_params(tmp_path):
    cfg = config(tmp_path, "flan_add_two", eval_period=5, eval_suite="heldout_zs.add_three",
                 eval_max_examples=6)
    seen = {}

    def factory(trainer, params, vocab, prefix_lm, max_length):
        seen.update(params=params, prefix_lm=prefix_lm, max_length=max_length)
        return ScriptedModel(adds_up, prefix_lm=prefix_lm, max_length=max_length)

    evaluator = PeriodicEval(cfg, trainer=None, model_factory=factory)
    assert evaluator.due(5) and not evaluator.due(4)
    scores = evaluator.suite_scores(5, params="PARAMS")
    assert scores == {"eval/Heldout-ZS": 100.0}
    assert seen == {"params": "PARAMS", "prefix_lm": True, "max_length": 80}
    res = json.loads((Path(tmp_path) / "eval/5/heldout_zs.add_three/results.json").read_text())
    assert res["tasks"]["heldout_zs.add_three"]["count"] == 6
    with pytest.raises(ValueError, match="EVAL_SUITE='nope'"):
        PeriodicEval(config(tmp_path, "flan_add_two", eval_period=5, eval_suite="nope"), trainer=None)


def test_eval_suite_writes_under_a_gcs_model_dir(tmp_path, monkeypatch):
    """A gs:// MODEL_DIR (the in-memory GCS of tests/fake_gcs.py): the suite's results land in the bucket,
    and no local `gs:` folder appears in the working directory (pathlib would make `gs:/bucket/...`)."""
    from flan_ul2r import fs
    from tests.fake_gcs import fake_gcs

    monkeypatch.chdir(tmp_path)
    cfg = config("gs://flan-test-bucket/run", "flan_add_two", eval_period=5,
                 eval_suite="heldout_zs.add_three", eval_max_examples=4)

    def factory(trainer, params, vocab, prefix_lm, max_length):
        return ScriptedModel(adds_up, prefix_lm=prefix_lm, max_length=max_length)

    with fake_gcs() as store:
        assert PeriodicEval(cfg, trainer=None, model_factory=factory).suite_scores(5, params=None) == \
            {"eval/Heldout-ZS": 100.0}
        res = fs.read_json("gs://flan-test-bucket/run/eval/5/heldout_zs.add_three/results.json")
        assert res["tasks"]["heldout_zs.add_three"]["count"] == 4
        assert any(n.startswith("flan-test-bucket/run/eval/5/") for n in store.names())
    assert list(tmp_path.iterdir()) == []
