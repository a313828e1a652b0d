"""Eval tasks in seqio's registry: one registry for training and evaluation.

`register(eval_task)` adds a `seqio.Task` whose `FunctionDataSource` yields each example as string features
(`inputs` = the prompt, `targets` = the first reference, `references` / `choices` / `parts` /
`exemplar_targets` as JSON lists, `chance`, `id`), whose `postprocess_fn` is the task's `Protocol` (answer
extraction; the runner reads the whole protocol from it) and whose `metric_fns` compute the protocol's
metric. A suite is a `seqio.Mixture` of eval tasks. `eval_task(name)` turns a registered task back into an
`EvalTask` for the runner; nothing is read from disk before its dataset is iterated.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import seqio
import tensorflow as tf

from flan_ul2r.evaluation.metrics import exact_match, mean_percent, squad_scores
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol

SPLIT = "validation"
FEATURES = ("inputs", "targets", "references", "choices", "chance", "id", "parts", "exemplar_targets")


def _features() -> dict[str, seqio.Feature]:
    vocab = seqio.PassThroughVocabulary(size=0)
    return {k: seqio.Feature(vocab, add_eos=False, required=False, dtype=tf.string, rank=0) for k in FEATURES}


def _record(ex: EvalExample) -> dict[str, str]:
    return {"inputs": ex.prompt, "targets": ex.references[0], "references": json.dumps(list(ex.references)),
            "choices": json.dumps(list(ex.choices)), "chance": "" if ex.chance is None else repr(ex.chance),
            "id": ex.id, "parts": json.dumps(list(ex.parts)),
            "exemplar_targets": json.dumps(list(ex.exemplar_targets))}


class ProtocolMetric:
    """seqio metric_fn(targets, predictions) for a protocol: exact match (or accuracy) of the extracted
    predictions against the targets; SQuAD EM/F1 for `squad`."""

    def __init__(self, protocol: Protocol):
        self.protocol = protocol

    def __call__(self, targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
        t = [x.decode() if isinstance(x, bytes) else str(x) for x in targets]
        if self.protocol.metric == "squad":
            scores = [squad_scores(p, [r]) for p, r in zip(predictions, t)]
            return {"exact_match": mean_percent(em for em, _ in scores),
                    "f1": mean_percent(f for _, f in scores)}
        name = "accuracy" if self.protocol.metric == "accuracy" else "exact_match"
        return {name: mean_percent(exact_match(p, [r]) for p, r in zip(predictions, t))}


def register(task: EvalTask) -> str:
    """Adds `task` to seqio's TaskRegistry (replacing an earlier one of the same name)."""
    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        rows = [_record(ex) for ex in task.load()]
        return tf.data.Dataset.from_generator(
            lambda: iter(rows), output_signature={k: tf.TensorSpec([], tf.string) for k in FEATURES})

    seqio.TaskRegistry.remove(task.name)
    seqio.TaskRegistry.add_provider(task.name, seqio.Task(
        task.name, seqio.FunctionDataSource(dataset_fn, splits=[SPLIT]), output_features=_features(),
        postprocess_fn=task.protocol, metric_fns=[ProtocolMetric(task.protocol)]))
    return task.name


def register_suite(name: str, task_names: Sequence[str]) -> str:
    seqio.MixtureRegistry.remove(name)
    seqio.MixtureRegistry.add(name, list(task_names), default_rate=1.0)
    return name


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_examples(task: seqio.Task) -> list[EvalExample]:
    ds = task.get_dataset(sequence_length=None, split=SPLIT, shuffle=False, num_epochs=1)
    out = []
    for row in ds.as_numpy_iterator():
        chance = _str(row["chance"])
        refs, choices = json.loads(_str(row["references"])), json.loads(_str(row["choices"]))
        parts, targets = json.loads(_str(row["parts"])), json.loads(_str(row["exemplar_targets"]))
        out.append(EvalExample(_str(row["id"]), _str(row["inputs"]), tuple(refs), tuple(choices),
                               float(chance) if chance else None, tuple(parts), tuple(targets)))
    return out


def eval_task(name: str) -> EvalTask:
    """The registered eval task `name` as an EvalTask (its protocol is the seqio postprocess_fn)."""
    task = seqio.get_mixture_or_task(name)
    if not isinstance(task, seqio.Task) or not isinstance(task.postprocessor, Protocol):
        raise ValueError(f"{name!r} is not an eval task (registered by flan_ul2r.tasks.evals)")
    return EvalTask(name, task.postprocessor, lambda: read_examples(task))


def suite_tasks(name: str) -> list[str]:
    """Task names of a suite (a seqio Mixture of eval tasks) or [name] for a single eval task."""
    try:
        found = seqio.get_mixture_or_task(name)
    except ValueError:
        from flan_ul2r.errors import unknown_name

        suites = sorted(n for n in seqio.MixtureRegistry.names() if _is_suite(n))
        raise unknown_name("EVAL_SUITE", name, seqio.TaskRegistry.names() | set(suites),
                           kind="eval suite or task", hint=f"suites: {', '.join(suites)}") from None
    if isinstance(found, seqio.Mixture):
        return [t.name for t in found.tasks]
    return [found.name]


def _is_suite(name: str) -> bool:
    try:
        mix = seqio.get_mixture_or_task(name)
        return isinstance(mix, seqio.Mixture) and all(isinstance(t.postprocessor, Protocol)
                                                      for t in mix.tasks)
    except Exception:  # noqa: BLE001 - a broken registration is not a suite
        return False
