"""What `MIXTURE_OR_TASK_NAME` names, asked of seqio's registry (the only one), and checked for training.

`leaf_tasks(name)` resolves a seqio Task or Mixture (sub-mixtures included, seqio's `Mixture.get_rate`) to
`[(task, normalized rate)]`. `check_tasks` refuses, with the task and feature named, what the decoder-only
loader cannot train on: a task without a `targets` output feature, a split a task lacks, and
vocabularies that differ between tasks of a mixture or between a task's `inputs` and `targets` (one
decoder reads both). A task may have `inputs` + `targets` (prefix LM) or `targets` alone (causal LM).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import seqio

from flan_ul2r.errors import ConfigError, unknown_name

REGISTER_HINT = ("tasks register when their module is imported: `import` it in a gin file, or "
                 "--gin.MIXTURE_OR_TASK_MODULE=my_tasks")


def registered_names() -> list[str]:
    return sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))


def leaf_tasks(name: str, flag: str = "MIXTURE_OR_TASK_NAME") -> list[tuple[seqio.Task, float]]:
    """[(task, rate / total rate)] of task or mixture `name`; tasks with rate 0 are left out. An unknown
    name is a ConfigError suggesting the closest registered names (`flag`: how the user gave it)."""
    if not isinstance(name, str) or name not in registered_names():
        raise unknown_name(flag, name, registered_names(), hint=REGISTER_HINT)
    provider = seqio.get_mixture_or_task(name)
    if isinstance(provider, seqio.Task):
        return [(provider, 1.0)]
    rates = [(t, float(provider.get_rate(t))) for t in provider.tasks]
    for task, rate in rates:
        if not rate >= 0:
            raise ValueError(f"mixture {name!r}: rate of task {task.name!r} is {rate!r}; must be >= 0")
    total = sum(r for _, r in rates)
    if not total > 0:
        raise ValueError(f"mixture {name!r}: rates sum to {total}")
    return [(t, r / total) for t, r in rates if r > 0]


def same_vocabulary(a: Any, b: Any) -> bool:
    """Equal vocabularies: the same object, equal `describe()` (our vocabularies), or seqio's `==`."""
    if a is b:
        return True
    da, db = getattr(a, "describe", None), getattr(b, "describe", None)
    if callable(da) and callable(db):
        return da() == db()
    return bool(a == b)


def check_tasks(name: str, tasks: list[seqio.Task], split: str) -> Any:
    """Checks what the loader needs (module docstring); returns the common vocabulary."""
    first_vocab, first_task = None, None
    for task in tasks:
        features = task.output_features
        if "targets" not in features:
            raise ValueError(f"task {task.name!r} (in {name!r}): output features {sorted(features)} lack "
                             "'targets'; a decoder-only task needs `targets` (and optionally `inputs`)")
        if split not in task.splits:
            raise ValueError(f"task {task.name!r} (in {name!r}): split={split!r} not in {list(task.splits)}")
        for key in ("inputs", "targets"):
            if key not in features:
                continue
            vocab = features[key].vocabulary
            if first_vocab is None:
                first_vocab, first_task = vocab, f"{task.name}:{key}"
            elif not same_vocabulary(vocab, first_vocab):
                raise ValueError(f"mixture {name!r}: the vocabulary of feature {key!r} of task {task.name!r} "
                                 f"differs from that of {first_task} ({_describe(vocab)} vs "
                                 f"{_describe(first_vocab)}); one model reads every task")
    return first_vocab


def _describe(vocab: Any) -> str:
    kind = getattr(vocab, "describe", None)
    text = f"{type(vocab).__name__}"
    if callable(kind):
        d = kind()
        text += f"(kind={d.get('kind')}, vocab_size={d.get('vocab_size')})"
    else:
        text += f"(vocab_size={getattr(vocab, 'vocab_size', '?')})"
    return text


def task_vocabulary(name: str, split: str = "train", flag: str = "MIXTURE_OR_TASK_NAME") -> Any:
    """The vocabulary every task of `name` shares (checked)."""
    return check_tasks(name, [t for t, _ in leaf_tasks(name, flag)], split)


def check_feature_lengths(name: str, lengths: Mapping[str, Any]) -> None:
    """TASK_FEATURE_LENGTHS for task or mixture `name`: whole numbers, `targets` >= 1, `inputs` >= 0; an
    `inputs` length of 0 only where the task allows it: a task without an `inputs` feature, or one sized by
    the total length (`seekable.TotalLengthTask.SIZED_BY_TOTAL`: the built-in UL2R/LM/Flan tasks). A plain
    seqio task with an `inputs` feature would be trimmed to empty inputs."""
    shown = f"TASK_FEATURE_LENGTHS={dict(lengths)}"
    for key, value in lengths.items():
        if key not in ("inputs", "targets"):
            raise ConfigError(f"{shown}: unknown feature {key!r}; a decoder-only run takes 'inputs' and "
                              "'targets'")
        low = 1 if key == "targets" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{shown}: {key!r} must be a whole number >= {low}, got {value!r}")
    if "targets" not in lengths:
        raise ConfigError(f"{shown} lacks 'targets'")
    if lengths.get("inputs", 0):
        return
    for task, _ in leaf_tasks(name):
        if "inputs" in task.output_features and not getattr(task, "SIZED_BY_TOTAL", False):
            raise ConfigError(f"{shown}: task {task.name!r} (in {name!r}) has an 'inputs' feature, which "
                              "seqio would trim to length 0; give 'inputs' a length > 0")
