"""Instruction tasks: examples + templates rendered in FLAN's formats, registered as seekable tasks and
mixed into `flan` / `flan_heldout` (Chung et al. 2022; FLAN v2 `flan/v2/mixtures.py`).

Nothing is registered on import; `tasks/flan.py` registers the embedded suite, a user calls
`register_instruction_task`. An instruction task's example `i` is a pure function of (seed, i): it is
planned and assembled a block at a time from pre-tokenized pieces (`flan_plan`, `flan_pieces`) inside a
`tf.numpy_function`, one call per block of examples. `register_renderer_task` is the one place that turns a
source of examples into a registered seekable task, and `register_flan_mixtures` the one place that
registers the mixtures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from flan_ul2r.data.core.seekable import SeekableTask, register_seekable_mixture, register_seekable_task
from flan_ul2r.data.flan import mixing as flan_mixing
from flan_ul2r.data.flan.layout import TaskLayout, build_layout
from flan_ul2r.data.flan.pieces import TokenizedPieces
from flan_ul2r.data.flan.plan import plan
from flan_ul2r.data.flan.templates import STYLES, Template, check_templates
from flan_ul2r.data.vocab.default_vocabulary import default_vocabulary

Examples = Callable[[str], Sequence[Mapping[str, Any]]]
_STYLE_BYTES = np.array([s.encode() for s in STYLES], object)


@dataclasses.dataclass(frozen=True)
class InstructionTask:
    """An instruction task's definition (see `register_instruction_task`)."""

    name: str
    examples: Examples
    templates: tuple[Template, ...]
    family: str
    style_mix: Mapping[str, float]
    num_shots: int | None = None
    held_out: bool = False
    splits: tuple[str, ...] = ("train", "validation")
    exemplars: Examples | None = None
    inversions: tuple[Template, ...] = ()
    inversion_rate: float = 0.0
    lettered: bool = False


class InstructionRenderer:
    """Renders one task: lazily laid out per split, tokenized per vocabulary, then `block` per call."""

    def __init__(self, task: InstructionTask, vocabulary: Any):
        self.task, self.vocabulary = task, vocabulary
        self._rows: dict[str, list[Mapping[str, Any]]] = {}
        self._layouts: dict[str, TaskLayout] = {}
        self._tokens: dict[str, TokenizedPieces] = {}
        self._lock = threading.RLock()

    def rows(self, split: str) -> list[Mapping[str, Any]]:
        with self._lock:
            if split not in self._rows:
                rows = list(self.task.examples(split))
                if not rows:
                    raise ValueError(f"task {self.task.name!r}: split {split!r} has no examples")
                check_templates(self.task.name, self.task.templates, rows[0])
                self._rows[split] = rows
            return self._rows[split]

    def layout(self, split: str) -> TaskLayout:
        with self._lock:
            if split not in self._layouts:
                t = self.task
                pools = {split: self.rows(split)}
                exemplars = None
                if t.exemplars is not None:
                    exemplars = {split: list(t.exemplars(split))}
                elif split != "train":
                    pools["train"] = self.rows("train")
                self._layouts[split] = build_layout(
                    t.name,
                    pools,
                    exemplars,
                    t.templates,
                    t.inversions,
                    t.style_mix,
                    t.num_shots,
                    t.inversion_rate,
                    t.lettered,
                )
            return self._layouts[split]

    def tokens(self, split: str) -> TokenizedPieces:
        with self._lock:
            if split not in self._tokens:
                self._tokens[split] = self.layout(split).pieces.tokenize(self.vocabulary)
            return self._tokens[split]

    def num_records(self, split: str) -> int:
        self.layout(split)  # lays out now, not inside the first block (pieces are tokenized on first use)
        return len(self.rows(split))

    def block(self, indices: np.ndarray, seeds: np.ndarray, split: str, inputs_length: int) -> tuple:
        """Examples `indices` (seeds [b, 2]): inputs/targets ids (+ EOS) flat with lengths, styles, tasks."""
        layout, tokens = self.layout(split), self.tokens(split)
        p = plan(layout, split, indices, seeds, (tokens.lengths, inputs_length))
        eos = int(self.vocabulary.eos_id)
        x, x_len = _with_eos(*tokens.assemble(p.inputs), eos)
        y, y_len = _with_eos(*tokens.assemble(p.targets), eos)
        names = np.where(p.inverted, (self.task.name + "_ii").encode(), self.task.name.encode()).astype(
            object
        )
        return x, x_len, y, y_len, _STYLE_BYTES[p.style], names


def _with_eos(flat: np.ndarray, lengths: np.ndarray, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """EOS after every row (Flan section 2.2: EOS ends inputs and targets)."""
    return np.insert(flat, np.cumsum(lengths), eos).astype(np.int32), (lengths + 1).astype(np.int64)


class BlockSource(Protocol):
    def num_records(self, split: str) -> int: ...

    def block(self, indices: np.ndarray, seeds: np.ndarray, split: str, inputs_length: int) -> tuple: ...


def register_renderer_task(
    name: str, source: BlockSource, vocabulary: Any, splits: Sequence[str]
) -> SeekableTask:
    """The seekable task over a block source; registered with the loader and seqio."""

    def num_records(split: str, seqlen: Mapping[str, int]) -> int:
        return source.num_records(split)

    def fetch(index: tf.Tensor, split: str, seqlen: Mapping[str, int]) -> dict[str, Any]:
        return {"index": index, "_split": split}

    def preprocess_batch(features: dict[str, Any], seeds: tf.Tensor, seqlen: Mapping[str, int]) -> dict:
        split, length = features["_split"], int(seqlen["inputs"])
        x, x_len, y, y_len, style, task = tf.numpy_function(
            lambda i, s: source.block(i, s, split, length),
            [features["index"], seeds],
            [tf.int32, tf.int64, tf.int32, tf.int64, tf.string, tf.string],
            stateful=False,
        )
        x.set_shape([None])
        y.set_shape([None])
        return {
            "inputs": tf.RaggedTensor.from_row_lengths(x, tf.reshape(x_len, [-1]), validate=False),
            "targets": tf.RaggedTensor.from_row_lengths(y, tf.reshape(y_len, [-1]), validate=False),
            "style": tf.reshape(style, [-1]),
            "task": tf.reshape(task, [-1]),
        }

    def preprocess(features: dict[str, Any], seed: tf.Tensor, seqlen: Mapping[str, int]) -> dict:
        one = preprocess_batch(
            {**features, "index": tf.reshape(features["index"], [1])}, tf.reshape(seed, [1, 2]), seqlen
        )
        return {
            "inputs": one["inputs"][0],
            "targets": one["targets"][0],
            "style": one["style"][0],
            "task": one["task"][0],
        }

    return register_seekable_task(
        SeekableTask(
            name,
            vocabulary,
            num_records,
            fetch,
            preprocess,
            splits=tuple(splits),
            string_features=("task", "style"),
            preprocess_batch=preprocess_batch,
        )
    )


@dataclasses.dataclass(frozen=True)
class _Member:
    """A seekable task's place in the Flan mixtures."""

    family: str
    held_out: bool
    origin: str  # "suite" | "user" | "collection"
    size: Callable[[], int]  # train examples, for examples-proportional mixing
    capped: bool = True  # the family's per-task cap applies (collection tasks come capped already)
    joins: bool = True  # part of `flan` / `flan_heldout`


_MEMBERS: dict[str, _Member] = {}
_RENDERERS: dict[str, InstructionRenderer] = {}
_CONFIG: dict[str, Any] = {}  # rates/caps/style mixes of the last register_flan_mixtures; empty = not yet
_DEFERRED: list[bool] = []  # inside `mixtures_deferred()`: registrations do not rebuild the mixtures


@contextlib.contextmanager
def mixtures_deferred() -> Iterator[None]:
    """Registrations inside do not rebuild `flan` / `flan_heldout` (call register_flan_mixtures after)."""
    _DEFERRED.append(True)
    try:
        yield
    finally:
        _DEFERRED.pop()


def _rebuild() -> None:
    if _CONFIG and not _DEFERRED:
        register_flan_mixtures(**_CONFIG)


def register_instruction_task(
    name: str,
    examples: Examples | Sequence[Mapping[str, Any]],
    templates: Sequence[Template],
    *,
    family: str = "muffin",
    style_mix: Mapping[str, float] | None = None,
    vocabulary: Any = None,
    num_shots: int | None = None,
    held_out: bool = False,
    splits: Sequence[str] = ("train", "validation"),
    exemplars: Examples | Sequence[Mapping[str, Any]] | None = None,
    inversions: Sequence[Template] = (),
    inversion_rate: float = 0.0,
    lettered: bool = False,
    num_examples: int | None = None,
    origin: str = "user",
    join_mixtures: bool = True,
) -> str:
    """Registers an instruction task; it joins mixture `flan` (or `flan_heldout` if held_out) via its family.

    `examples`: a list of dicts (used for every split) or `split -> list of dicts`; each dict holds the
    templates' fields plus `answer` (and optionally `rationale`, `options`). `style_mix`: default the
    family's (flan_mixing.FAMILY_STYLE_MIXES). `num_shots`: None = FLAN's 0-to-10 draw, else a fixed
    count. `exemplars`: a separate few-shot pool (NIV2 "Positive Examples"; FLAN uses 2 shots there).
    `inversions` + `inversion_rate`: input-inverted templates and how often to use them. `lettered`:
    options always get letter markers and the target the letter. `num_examples`: the train count for
    mixing when known (else counted on first mixture registration). `join_mixtures=False` keeps the task
    out of `flan` / `flan_heldout` (see `register_instruction_mixture`).
    """
    flan_mixing.check_family(name, family)
    mix = (
        dict(style_mix) if style_mix is not None else flan_mixing.style_mix_for(family, _CONFIG.get("styles"))
    )
    flan_mixing.check_style_mix(name, mix, STYLES)
    as_split = lambda rows: rows if callable(rows) or rows is None else (lambda split, r=list(rows): r)  # noqa
    task = InstructionTask(
        name,
        as_split(examples),
        tuple(templates),
        family,
        mix,
        num_shots,
        held_out,
        tuple(splits),
        as_split(exemplars),
        tuple(inversions),
        float(inversion_rate),
        lettered,
    )
    renderer = InstructionRenderer(task, vocabulary if vocabulary is not None else default_vocabulary())
    register_renderer_task(name, renderer, renderer.vocabulary, splits)
    _RENDERERS[name] = renderer
    size = (lambda: num_examples) if num_examples is not None else (lambda: len(renderer.rows("train")))
    _MEMBERS[name] = _Member(family, held_out, origin, size, joins=join_mixtures)
    if join_mixtures:
        _rebuild()
    return name


def get_renderer(name: str) -> InstructionRenderer:
    if name not in _RENDERERS:
        raise ValueError(f"unknown instruction task {name!r}; registered: {sorted(_RENDERERS)}")
    return _RENDERERS[name]


def family_of(name: str) -> str:
    """The family of a registered Flan task (an input-inverted row's task name ends in `_ii`)."""
    base = name[:-3] if name not in _MEMBERS and name.endswith("_ii") else name
    return _MEMBERS[base].family


def add_member(name: str, family: str, size: int, origin: str = "collection") -> None:
    """A seekable task registered elsewhere (the Flan Collection) joins the mixtures, its size already
    capped."""
    _MEMBERS[name] = _Member(family, False, origin, lambda: size, capped=False)
    _rebuild()


def drop_members(origin: str) -> None:
    """Forgets every mixture member of one origin (e.g. "collection", before registering another)."""
    for name in [n for n, m in _MEMBERS.items() if m.origin == origin]:
        _MEMBERS.pop(name)
        _RENDERERS.pop(name, None)


def register_flan_mixtures(
    rates: Mapping[str, float],
    caps: Mapping[str, int],
    styles: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """Mixtures `flan` (held-in: the Flan Collection's tasks when any are registered, else the suite's;
    plus user tasks) and `flan_heldout`; later registrations rebuild them with the same settings."""
    _CONFIG.update(rates=dict(rates), caps=dict(caps), styles=dict(styles or {}))
    collection = any(m.origin == "collection" for m in _MEMBERS.values())
    skip = "suite" if collection else "collection"
    members = {n: m for n, m in _MEMBERS.items() if m.joins}
    held_in = [n for n, m in members.items() if not m.held_out and m.origin != skip]
    if held_in:
        register_instruction_mixture("flan", held_in, rates, caps)
    held_out = [n for n, m in members.items() if m.held_out]
    if held_out:
        register_seekable_mixture("flan_heldout", [(n, 1.0) for n in held_out])


def register_instruction_mixture(
    name: str, tasks: Sequence[str], rates: Mapping[str, float], caps: Mapping[str, int]
) -> None:
    """Mixture `name` over registered instruction tasks, weighted as `flan` is (family rates, capped
    examples-proportional shares)."""
    unknown = sorted(set(tasks) - set(_MEMBERS))
    if unknown:
        raise ValueError(f"mixture {name!r}: unknown instruction tasks {unknown}")
    chosen = {n: _MEMBERS[n] for n in tasks}
    weights = flan_mixing.family_weights(
        {n: m.size() for n, m in chosen.items()},
        {n: m.family for n, m in chosen.items()},
        rates,
        caps,
        uncapped={n for n, m in chosen.items() if not m.capped},
    )
    register_seekable_mixture(name, weights)
