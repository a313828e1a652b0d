"""Evaluation during training, as t5x's `train_eval` / `infer_eval` do: every `eval_period` steps,

- validation loss and accuracy on the training task's `validation` split (the first `eval_batches`
  batches of it, the same ones every time so the curve is comparable); a task without a validation split
  is reported once and skipped;
- optionally an eval suite (`eval_suite`, e.g. `heldout`) on the current params, written like
  `flan-ul2r eval` to MODEL_DIR/eval/<step>/<suite>/ (results.json, results.md, predictions/).

Scalars go to metrics.jsonl (a row `{"step", "eval/loss", "eval/accuracy", "eval/<benchmark>", ...}`) and
TensorBoard (`eval/...`) through the run's MetricsWriter.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from flan_ul2r import fs, partitioning
from flan_ul2r.decoding.loaded_model import LoadedModel
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.trainer import Trainer


def loaded_model(trainer: Trainer, params: Any, vocab: Any, prefix_lm: bool, max_length: int) -> Any:
    """The current params behind flan_ul2r.load_model's interface (decoding and scoring), on the
    trainer's mesh and rules (the params are already sharded that way)."""
    model = LoadedModel(trainer.cfg, params, vocab, max_length=max_length, prefix_lm=prefix_lm)
    return model.with_mesh(trainer.mesh, trainer.rules)


class PeriodicEval:
    """`due(step)` / `run(step, params) -> {"eval/...": float}`; inert when `cfg.eval_period` is 0."""

    def __init__(self, cfg: RunConfig, trainer: Trainer, model_factory: Callable[..., Any] = loaded_model):
        self.cfg, self.trainer, self.model_factory = cfg, trainer, model_factory
        self.period = int(cfg.eval_period or 0)
        self.validation = self.period > 0 and self._has_validation()
        self.suite_tasks: list[str] = []
        if self.period > 0 and cfg.eval_suite:
            from flan_ul2r.evaluation.seqio_tasks import suite_tasks

            self.suite_tasks = suite_tasks(cfg.eval_suite)  # an unknown suite fails before training
        self._sums = None
        self._host_batches: list[dict[str, np.ndarray]] = []

    def due(self, step: int) -> bool:
        """An eval step with something to evaluate."""
        return self.period > 0 and bool(self.validation or self.suite_tasks) and step % self.period == 0

    def _batches(self):
        from flan_ul2r.data.core.loader import make_train_iterator

        hosts = jax.process_count()
        return make_train_iterator(self.cfg.mixture_or_task_name, self.cfg.task_feature_lengths,
                                   self.cfg.batch_size // hosts, seed=self.cfg.seed,
                                   shard_index=jax.process_index(), num_shards=hosts, split="validation")

    def _has_validation(self) -> bool:
        from flan_ul2r.data.core.registry import leaf_tasks

        lacking = [t.name for t, _ in leaf_tasks(self.cfg.mixture_or_task_name)
                   if "validation" not in t.splits]
        if lacking:
            print(f"eval: {self.cfg.mixture_or_task_name!r} has no validation split (tasks {lacking[:5]} "
                  "have only train); validation loss is skipped", file=sys.stderr)
        return not lacking

    def validation_loss(self, params: Any) -> dict[str, float]:
        """Loss (cross-entropy + z-loss) and accuracy per target token over the first `eval_batches`."""
        if self._sums is None:  # the same first batches every time (read once, kept on the host)
            self._sums = jax.jit(self.trainer.eval_sums)
            data = self._batches()
            self._host_batches = [next(data) for _ in range(self.cfg.eval_batches)]
        totals = {"ce": 0.0, "z_loss": 0.0, "correct": 0.0, "num_tokens": 0.0}
        for local in self._host_batches:
            batch = partitioning.global_batch(local, self.trainer.mesh)
            sums = jax.device_get(self.trainer.with_mesh(self._sums, params, batch))
            for k in totals:
                totals[k] += float(np.asarray(sums[k]))
        n = max(totals["num_tokens"], 1.0)
        return {"eval/loss": (totals["ce"] + totals["z_loss"]) / n, "eval/cross_entropy": totals["ce"] / n,
                "eval/accuracy": totals["correct"] / n, "eval/num_target_tokens": totals["num_tokens"]}

    def suite_scores(self, step: int, params: Any) -> dict[str, float]:
        from flan_ul2r.data.core.registry import task_vocabulary
        from flan_ul2r.evaluation.evaluate import check_model, evaluate
        from flan_ul2r.evaluation.runner import EvalSettings
        from flan_ul2r.evaluation.seqio_tasks import eval_task

        prefix_lm = int(self.cfg.task_feature_lengths.get("inputs", 0)) > 0
        vocab = task_vocabulary(self.cfg.mixture_or_task_name)
        model = self.model_factory(self.trainer, params, vocab, prefix_lm, self.cfg.sequence_length)
        check_model(model, f"RunConfig.eval_suite={self.cfg.eval_suite}")
        out_dir = None
        if jax.process_index() == 0:
            out_dir = fs.absolute(self.cfg.model_dir) / "eval" / str(step) / str(self.cfg.eval_suite)
        settings = EvalSettings(max_examples=self.cfg.eval_max_examples, batch_size=self.cfg.batch_size,
                                progress=False)
        summary, _ = evaluate(model, [eval_task(n) for n in self.suite_tasks], settings, out_dir=out_dir,
                              model_path=f"{self.cfg.model_dir} (step {step})",
                              suite=str(self.cfg.eval_suite))
        scores = {f"eval/{name}": float(b["score"]) for name, b in summary["benchmarks"].items()}
        norm = summary.get("normalized_average") or {}
        if norm.get("value") is not None:
            scores["eval/normalized_average"] = float(norm["value"])
        return scores

    def run(self, step: int, params: Any) -> dict[str, float]:
        out = self.validation_loss(params) if self.validation else {}
        if self.suite_tasks:
            out.update(self.suite_scores(step, params))
        return out
