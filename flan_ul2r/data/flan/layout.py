"""Instruction examples laid out as piece ids: every text a template can make of an example, added once
to a `PieceTable`, so the planner (`flan_plan`) renders by picking ids.

`GlobalPieces` holds the FLAN formatting pieces (flan_patterns); `ExampleTable` the per-example pieces
of one pool (a split, or a few-shot exemplar pool) for a task's templates. Pieces that can follow a
few-shot prefix ("Q:") also exist with a leading space (index 1 of the last axis), the same text
`templates.render` writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flan_ul2r.data.flan import patterns as fp
from flan_ul2r.data.flan.pieces import PieceTable
from flan_ul2r.data.flan.templates import STYLES, Template, TemplateError, fill, styles_for


@dataclasses.dataclass(frozen=True)
class GlobalPieces:
    """Piece ids of the formatting pools; `markers` are the OPTION_MARKERS indices a task may draw."""

    separator: np.ndarray  # [S] EXAMPLE_SEPARATORS
    inputs_prefix: np.ndarray  # [P]
    delimiter_prefix: np.ndarray  # [D, P]: x_y_delimiter + targets prefix
    targets_prefix_empty: np.ndarray  # [P] bool
    header: np.ndarray  # [H]: "\n" + header ("" -> 0)
    item_lead: np.ndarray  # [K, M]: "\n" + label of option j
    label: np.ndarray  # [K, M, 2]: the target for option j (plain, space-led); 0 for bullets
    trigger: np.ndarray  # [C]: the training CoT triggers
    answer_lead: np.ndarray  # [A]
    period: int
    markers: np.ndarray  # allowed marker indices

    @classmethod
    def build(cls, pieces: PieceTable, max_options: int, lettered_only: bool = False) -> GlobalPieces:
        markers = [
            k
            for k, m in enumerate(fp.OPTION_MARKERS)
            if (not m.labels or len(m.labels) >= max_options) and (m.answer or not lettered_only)
        ]
        item_lead = np.zeros([len(fp.OPTION_MARKERS), max_options], np.int32)
        label = np.zeros([len(fp.OPTION_MARKERS), max_options, 2], np.int32)
        for k in markers:
            m = fp.OPTION_MARKERS[k]
            for j in range(max_options):
                item_lead[k, j] = pieces.add("\n" + m.label(j))
                if m.answer:
                    label[k, j] = [pieces.add(m.target(j)), pieces.add(" " + m.target(j))]
        prefixes = fp.FEW_SHOT_PREFIXES
        return cls(
            separator=pieces.add_all(fp.EXAMPLE_SEPARATORS),
            inputs_prefix=pieces.add_all(p for p, _ in prefixes),
            delimiter_prefix=np.array(
                [[pieces.add(d + t) for _, t in prefixes] for d in fp.X_Y_DELIMITERS], np.int32
            ),
            targets_prefix_empty=np.array([not t for _, t in prefixes]),
            header=pieces.add_all("\n" + h if h else "" for h in fp.OPTION_HEADERS),
            item_lead=item_lead,
            label=label,
            trigger=pieces.add_all(fp.COT_TRIGGERS),
            answer_lead=pieces.add_all(fp.ANSWER_LEADS),
            period=pieces.add("."),
            markers=np.array(markers, np.int32),
        )


def _both(pieces: PieceTable, text: str) -> tuple[int, int]:
    return pieces.add(text), pieces.add(" " + text)


@dataclasses.dataclass(frozen=True)
class ExampleTable:
    """Per-example piece ids of one pool for templates [T] and inversion templates [I]."""

    x_pre: np.ndarray  # [n, T, 2] inputs before {options_}
    x_post: np.ndarray  # [n, T] inputs after {options_}
    y_pre: np.ndarray  # [n, T, 2] targets before {answer}
    y_post: np.ndarray  # [n, T]
    y_whole: np.ndarray  # [n, T, 2] targets of templates without {answer}
    answer: np.ndarray  # [n, 2]
    rationale: np.ndarray  # [n, 2] (0 = none)
    options: np.ndarray  # [n, M] " option" (0 = none)
    num_options: np.ndarray  # [n]
    answer_option: np.ndarray  # [n] index of the answer among the options (-1: none)
    inv_x: np.ndarray  # [n, I, 2]
    inv_y: np.ndarray  # [n, I, 2]

    def __len__(self) -> int:
        return len(self.answer)

    @property
    def has_rationale(self) -> np.ndarray:
        return self.rationale[:, 0] > 0

    @classmethod
    def build(
        cls,
        examples: Sequence[Mapping[str, Any]],
        templates: Sequence[Template],
        inversions: Sequence[Template],
        pieces: PieceTable,
        max_options: int,
        task: str,
    ) -> ExampleTable:
        n, t_count, i_count = len(examples), len(templates), len(inversions)
        x_pre, y_pre, y_whole = (np.zeros([n, t_count, 2], np.int32) for _ in range(3))
        x_post, y_post = np.zeros([n, t_count], np.int32), np.zeros([n, t_count], np.int32)
        answer, rationale = np.zeros([n, 2], np.int32), np.zeros([n, 2], np.int32)
        options = np.zeros([n, max_options], np.int32)
        num_options, answer_option = np.zeros([n], np.int32), np.full([n], -1, np.int32)
        inv_x, inv_y = np.zeros([n, i_count, 2], np.int32), np.zeros([n, i_count, 2], np.int32)
        parts = [(t.input_parts(), t.target_parts()) for t in templates]
        for e, ex in enumerate(examples):
            opts = [str(o) for o in ex.get("options") or ()]
            answer[e] = _both(pieces, str(ex["answer"]))
            if ex.get("rationale"):
                rationale[e] = _both(pieces, str(ex["rationale"]))
            num_options[e] = len(opts)
            options[e, : len(opts)] = [pieces.add(" " + o) for o in opts]
            if opts:
                if str(ex["answer"]) not in opts:
                    raise TemplateError(
                        f"task {task!r}: example {e}: answer {ex['answer']!r} is not one of "
                        f"its options {opts}"
                    )
                answer_option[e] = opts.index(str(ex["answer"]))
            for t, ((before, after), target) in enumerate(parts):
                x_pre[e, t] = _both(pieces, fill(before, ex, task, t))
                x_post[e, t] = pieces.add(fill(after, ex, task, t))
                if target is None:
                    y_whole[e, t] = _both(pieces, fill(templates[t].targets, ex, task, t))
                else:
                    y_pre[e, t] = _both(pieces, fill(target[0], ex, task, t))
                    y_post[e, t] = pieces.add(fill(target[1], ex, task, t))
            for i, inv in enumerate(inversions):
                inv_x[e, i] = _both(pieces, fill(inv.inputs, ex, task, i))
                inv_y[e, i] = _both(pieces, fill(inv.targets, ex, task, i))
        return cls(
            x_pre,
            x_post,
            y_pre,
            y_post,
            y_whole,
            answer,
            rationale,
            options,
            num_options,
            answer_option,
            inv_x,
            inv_y,
        )


def max_options(*pools: Sequence[Mapping[str, Any]]) -> int:
    return max([len(ex.get("options") or ()) for pool in pools for ex in pool] + [1])


def style_cdfs(style_mix: Mapping[str, float]) -> np.ndarray:
    """[2, len(STYLES)] cumulative style weights: row 0 for examples without a rationale (CoT styles
    removed, `templates.styles_for`), row 1 for examples with one."""
    rows = []
    for rationale in (False, True):
        mix = styles_for({"rationale": "r"} if rationale else {}, style_mix)
        rows.append(np.cumsum([mix.get(s, 0.0) for s in STYLES]))
    cdf = np.array(rows)
    cdf[:, -1] = 1.0
    return cdf


@dataclasses.dataclass(frozen=True)
class TaskLayout:
    """What the planner needs for one task: pieces, pools per split, exemplar pools, template flags."""

    name: str
    pieces: PieceTable
    glob: GlobalPieces
    pools: dict[str, ExampleTable]
    shot_pools: dict[str, ExampleTable]
    shots_from_self: dict[str, bool]  # the exemplar pool is the split itself: never show the example
    options_slot: np.ndarray  # [T] bool: the template has {options_}
    answer_slot: np.ndarray  # [T] bool: the targets have {answer}
    style_cdf: np.ndarray  # [2, len(STYLES)]
    num_shots: int | None  # None: FLAN's 0-to-10 draw
    inversion_rate: float
    num_templates: int
    num_inversions: int


def build_layout(
    name: str,
    pools: Mapping[str, Sequence[Mapping[str, Any]]],
    exemplar_pools: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    templates: Sequence[Template],
    inversions: Sequence[Template],
    style_mix: Mapping[str, float],
    num_shots: int | None,
    inversion_rate: float,
    lettered_only: bool,
) -> TaskLayout:
    """Lays out every split in `pools`; few-shot exemplars come from `exemplar_pools[split]` when given,
    else from the `train` pool (the example itself excluded when the split is train)."""
    pieces = PieceTable()
    extra = list((exemplar_pools or {}).values())
    width = max_options(*pools.values(), *extra)
    glob = GlobalPieces.build(pieces, width, lettered_only)
    tables = {
        s: ExampleTable.build(rows, templates, inversions, pieces, width, name) for s, rows in pools.items()
    }
    shot_pools, from_self = {}, {}
    for split in pools:
        if exemplar_pools is not None:
            shot_pools[split] = ExampleTable.build(
                exemplar_pools[split], templates, inversions, pieces, width, name
            )
            from_self[split] = False
        else:
            shot_pools[split] = tables["train"]
            from_self[split] = split == "train"
    return TaskLayout(
        name,
        pieces,
        glob,
        tables,
        shot_pools,
        from_self,
        np.array(["{options_}" in t.inputs for t in templates]),
        np.array([t.target_parts() is not None for t in templates]),
        style_cdfs(style_mix),
        num_shots,
        float(inversion_rate),
        len(templates),
        len(inversions),
    )
