"""The Flan renderer's fast path: a block of examples planned as piece ids, vectorized in numpy.

Example `index` at loader position `p` is a pure function of (seed, p, index): every random choice is a
counter-based uniform (splitmix64 of the seed pair and a stream number), so resume is exact and a block
gives the same rows as its examples one by one. Per example, as FLAN v2 renders (flan_patterns):
1. style from the task's style mix (CoT styles only for examples with a rationale); with the task's
   inversion rate, an input-inverted template instead (FLAN's "-II" tasks; non-CoT, no options);
2. template, uniformly;
3. few-shot: k exemplars (FLAN's 0-to-10 draw, or a fixed count), distinct, never the example itself,
   all in the query's template and format; prefixes, x-y delimiter and separator drawn per example;
   whole exemplars dropped from the front until the prompt fits 1920/2048 of the inputs length, and an
   example left with none is rendered zero-shot (FLAN drops it; we keep the draw, so seek stays exact);
4. options shown in `_opt` and CoT styles when the example has options and the template a slot: a
   random header and marker, the target rewritten to the option's label for lettered markers;
5. CoT: a training trigger (never the evaluation trigger) and an answer lead.
`Plan` keeps every choice, so tests can render the same example with `templates.render`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from flan_ul2r.data.flan import patterns as fp
from flan_ul2r.data.flan.layout import ExampleTable, GlobalPieces, TaskLayout
from flan_ul2r.data.flan.templates import STYLES, is_cot, is_few_shot, shows_options, zero_shot_of

STYLE_INDEX = {s: i for i, s in enumerate(STYLES)}
Budget = tuple[Callable[[np.ndarray], np.ndarray], int]  # (token counts of piece ids, inputs length)
_FEW = np.array([is_few_shot(s) for s in STYLES])
_COT = np.array([is_cot(s) for s in STYLES])
_OPT = np.array([shows_options(s) for s in STYLES])
_ZERO = np.array([STYLE_INDEX[zero_shot_of(s)] for s in STYLES])
_NOOPT = np.array([STYLE_INDEX["fs_noopt" if is_few_shot(s) else "zs_noopt"] for s in STYLES])
# One random stream per choice (column of `uniforms`); U_GAPS.. are the exemplar gaps.
(
    U_STYLE,
    U_INVERT,
    U_TEMPLATE,
    U_SHOTS,
    U_PREFIX,
    U_DELIMITER,
    U_SEPARATOR,
    U_HEADER,
    U_MARKER,
    U_TRIGGER,
    U_LEAD,
    U_START,
    U_GAPS,
) = range(13)
CANDIDATES = fp.MAX_SHOTS + 1  # one spare: the example itself may be among the candidates
_SHOT_CDF = np.array(fp.shot_count_cdf())
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment (Steele, Lea and Flood 2014)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 arrays (wrapping arithmetic; the published constants)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniforms(seeds: np.ndarray, count: int) -> np.ndarray:
    """[b, count] floats in [0, 1): stream j of row i is a hash of (seeds[i, 0], seeds[i, 1], j)."""
    s = np.ascontiguousarray(seeds, np.int64).reshape(-1, 2).view(np.uint64)
    key = _mix(_mix(s[:, 0] + _GOLDEN) ^ s[:, 1])
    streams = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
    return (_mix(key[:, None] ^ streams[None, :]) >> np.uint64(11)).astype(np.float64) / 2.0**53


def _pick(u: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    return np.minimum((u * n).astype(np.int64), np.asarray(n) - 1)


@dataclasses.dataclass
class Plan:
    """Choices and piece rows of a block; `inputs`/`targets` are piece ids (0 = empty)."""

    inputs: np.ndarray  # [b, slots]
    targets: np.ndarray  # [b, 4]
    style: np.ndarray  # [b] index into STYLES
    inverted: np.ndarray  # [b] bool
    template: np.ndarray
    shots: np.ndarray  # [b, MAX_SHOTS] exemplar pool ids in prompt order, -1 = none
    prefix: np.ndarray
    delimiter: np.ndarray
    separator: np.ndarray
    header: np.ndarray
    marker: np.ndarray
    trigger: np.ndarray  # index into COT_TRIGGERS
    lead: np.ndarray


def _exemplars(u: np.ndarray, pool_size: int, self_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """[b, MAX_SHOTS] distinct pool ids (valid first) and how many are valid. Offsets from a random start
    with random gaps (all distinct) when the pool is large, a rotation of the pool otherwise."""
    b = len(u)
    if pool_size == 0:
        return np.full([b, fp.MAX_SHOTS], -1, np.int64), np.zeros([b], np.int64)
    start = _pick(u[:, U_START], pool_size)[:, None]
    if pool_size >= 2 * CANDIDATES:
        gap_max = (pool_size - 1) // CANDIDATES
        gaps = 1 + _pick(u[:, U_GAPS : U_GAPS + CANDIDATES - 1], gap_max)
        offsets = np.concatenate([np.zeros([b, 1], np.int64), np.cumsum(gaps, axis=1)], axis=1)
    else:
        offsets = np.broadcast_to(np.arange(min(CANDIDATES, pool_size)), (b, min(CANDIDATES, pool_size)))
    ids = (start + offsets) % pool_size
    valid = np.ones(ids.shape, bool) if self_ids is None else ids != self_ids[:, None]
    order = np.argsort(~valid, axis=1, kind="stable")
    ids, valid = np.take_along_axis(ids, order, 1), np.take_along_axis(valid, order, 1)
    ids = np.where(valid, ids, -1)[:, : fp.MAX_SHOTS]
    pad = fp.MAX_SHOTS - ids.shape[1]
    ids = np.pad(ids, [(0, 0), (0, pad)], constant_values=-1) if pad > 0 else ids
    return ids, (ids >= 0).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class _Format:
    """Per-row choices broadcast against the unit axis ([b, 1] arrays)."""

    template: np.ndarray
    cot: np.ndarray
    opt: np.ndarray
    inverted: np.ndarray
    prefix_lead: np.ndarray  # inputs prefix non-empty (few-shot only)
    target_lead: np.ndarray  # targets prefix non-empty (few-shot only)
    header: np.ndarray
    marker: np.ndarray
    trigger: np.ndarray
    lead: np.ndarray


def _answer(
    tab: ExampleTable, glob: GlobalPieces, e: np.ndarray, shown: np.ndarray, f: _Format
) -> np.ndarray:
    """[..., 2] answer pieces (plain, space-led): the option label for lettered markers."""
    labels = glob.label[f.marker, np.maximum(tab.answer_option[e], 0)]
    lettered = shown & (labels[..., 0] > 0)
    return np.where(lettered[..., None], labels, tab.answer[e])


def _units(
    layout: TaskLayout, tab: ExampleTable, e: np.ndarray, f: _Format, shot: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Input slots [..., 5 + 2M] and target slots [..., 4] of examples `e` (ids into `tab`)."""
    glob, e = layout.glob, np.maximum(e, 0)
    t = np.minimum(f.template, layout.num_templates - 1)
    shown = f.opt & layout.options_slot[t] & (tab.num_options[e] > 0) & ~f.inverted
    lead_x = f.prefix_lead.astype(np.int64)
    width = tab.options.shape[1]
    j = np.arange(width)
    item_on = shown[..., None] & (j < tab.num_options[e][..., None])
    items = np.stack(
        [np.where(item_on, glob.item_lead[f.marker[..., None], j], 0), np.where(item_on, tab.options[e], 0)],
        axis=-1,
    ).reshape(*e.shape, 2 * width)
    full = lambda a: np.broadcast_to(a, e.shape)  # noqa: E731 - per-row choices to [b, units]
    x = np.concatenate(
        [
            np.stack([tab.x_pre[e, t, lead_x], np.where(shown, glob.header[f.header], 0)], -1),
            items,
            np.stack([tab.x_post[e, t], full(np.where(f.cot, glob.trigger[f.trigger], 0))], -1),
        ],
        axis=-1,
    )
    lead_y = (f.target_lead & shot).astype(np.int64)
    answer = _answer(tab, glob, e, shown, f)
    y_pre_plain = tab.y_pre[e, t, 0]
    plain_y = np.stack(
        [
            np.where(lead_y & (y_pre_plain > 0), tab.y_pre[e, t, 1], y_pre_plain),
            np.where(lead_y & (y_pre_plain == 0), answer[..., 1], answer[..., 0]),
            tab.y_post[e, t],
            np.zeros_like(e),
        ],
        -1,
    )
    whole_y = np.stack([tab.y_whole[e, t, lead_y]] + [np.zeros_like(e)] * 3, -1)
    cot_y = np.stack(
        [
            tab.rationale[e, lead_y],
            full(glob.answer_lead[f.lead]),
            answer[..., 1],
            np.full_like(e, glob.period),
        ],
        -1,
    )
    y = np.where(f.cot[..., None], cot_y, np.where(full(layout.answer_slot[t])[..., None], plain_y, whole_y))
    if layout.num_inversions:
        i = np.minimum(f.template, layout.num_inversions - 1)
        inv_x = np.zeros_like(x)
        inv_x[..., 0] = tab.inv_x[e, i, lead_x]
        inv_y = np.stack([tab.inv_y[e, i, lead_y]] + [np.zeros_like(e)] * 3, -1)
        x = np.where(f.inverted[..., None], inv_x, x)
        y = np.where(f.inverted[..., None], inv_y, y)
    return x, y


def _choose_styles(
    layout: TaskLayout, tab: ExampleTable, e: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Style index per row and whether the row is input-inverted."""
    cdf = layout.style_cdf[tab.has_rationale[e].astype(np.int64)]
    s = np.minimum((u[:, U_STYLE, None] >= cdf).sum(axis=1), len(STYLES) - 1)
    inverted = (u[:, U_INVERT] < layout.inversion_rate) & (layout.num_inversions > 0)
    return np.where(inverted, _NOOPT[s], s), inverted


def _shot_counts(layout: TaskLayout, few: np.ndarray, u: np.ndarray) -> np.ndarray:
    fixed = layout.num_shots
    if fixed is not None:
        k = np.full(len(u), min(int(fixed), fp.MAX_SHOTS))
    else:
        k = np.searchsorted(_SHOT_CDF, u[:, U_SHOTS], side="right") + 1
    return np.where(few, np.minimum(k, fp.MAX_SHOTS), 0)


def _format(
    layout: TaskLayout, u: np.ndarray, s: np.ndarray, inverted: np.ndarray
) -> tuple[_Format, np.ndarray]:
    """Per-row format draws ([b, 1] arrays) and the few-shot prefix pair index."""
    glob, few = layout.glob, _FEW[s]
    n_templates = np.where(inverted, max(layout.num_inversions, 1), layout.num_templates)
    prefix = np.where(few, _pick(u[:, U_PREFIX], len(fp.FEW_SHOT_PREFIXES)), 0)
    trigger = _pick(u[:, U_TRIGGER], len(fp.COT_TRIGGERS))
    col = lambda a: np.asarray(a)[:, None]  # noqa: E731
    f = _Format(
        template=col(_pick(u[:, U_TEMPLATE], n_templates)),
        cot=col(_COT[s]),
        opt=col(_OPT[s]),
        inverted=col(inverted),
        prefix_lead=col(glob.inputs_prefix[prefix] > 0),
        target_lead=col(few & ~glob.targets_prefix_empty[prefix]),
        header=col(_pick(u[:, U_HEADER], len(glob.header))),
        marker=col(glob.markers[_pick(u[:, U_MARKER], len(glob.markers))]),
        trigger=col(trigger),
        lead=col(_pick(u[:, U_LEAD], len(glob.answer_lead))),
    )
    return f, prefix


def plan(
    layout: TaskLayout,
    split: str,
    indices: np.ndarray,
    seeds: np.ndarray,
    budget: Budget | None,
) -> Plan:
    """Plans examples `indices` of `split` with example seeds [b, 2]. `budget` = (a function giving the
    token count of each piece id, e.g. `TokenizedPieces.lengths`; the inputs length) prunes exemplars to
    FLAN's budget (None: no pruning). Training draws only: evaluation prompts are
    `flan_ul2r.data.flan.eval_prompts` (fixed format, the evaluation CoT trigger)."""
    tab, pool, glob = layout.pools[split], layout.shot_pools[split], layout.glob
    e = np.asarray(indices, np.int64).reshape(-1)
    u = uniforms(seeds, U_GAPS + CANDIDATES)
    s, inverted = _choose_styles(layout, tab, e, u)
    f, prefix = _format(layout, u, s, inverted)
    shots, available = _exemplars(u, len(pool), e if layout.shots_from_self[split] else None)
    k = np.minimum(_shot_counts(layout, _FEW[s], u), available)
    delimiter = _pick(u[:, U_DELIMITER], len(fp.X_Y_DELIMITERS))
    separator = _pick(u[:, U_SEPARATOR], len(fp.EXAMPLE_SEPARATORS))
    query_x, query_y = _units(layout, tab, e[:, None], f, shot=False)
    delimiter_prefix = glob.delimiter_prefix[delimiter, prefix]
    inputs_prefix = glob.inputs_prefix[prefix]
    separators = glob.separator[separator]
    shot_rows = _shot_rows(layout, pool, shots, k, f, inputs_prefix, delimiter_prefix, separators)
    b, width = shot_rows.shape[0], shot_rows.shape[-1]
    query_end = np.where(f.target_lead[:, 0], delimiter_prefix, 0)
    query = np.concatenate([inputs_prefix[:, None], query_x[:, 0], query_end[:, None]], axis=-1)
    kept = _fit(shot_rows, query, k, budget)
    shots = np.where(kept, shots, -1)
    order = np.argsort(~kept, axis=1, kind="stable")  # kept shots first, in their order
    shots = np.take_along_axis(shots, order, 1)
    shot_rows = np.where(kept[..., None], shot_rows, 0).reshape(b, fp.MAX_SHOTS * width)
    t = np.minimum(f.template[:, 0], layout.num_templates - 1)
    shown = layout.options_slot[t] & (tab.num_options[e] > 0) & ~inverted
    s = np.where(_OPT[s] & ~_COT[s] & ~shown, _NOOPT[s], s)  # the label says what was rendered
    s = np.where(_FEW[s] & (kept.sum(axis=1) == 0), _ZERO[s], s)
    rows = np.concatenate([shot_rows, query], axis=1)
    return Plan(rows, query_y[:, 0], s, inverted, f.template[:, 0], shots, prefix, delimiter, separator,
                f.header[:, 0], f.marker[:, 0], f.trigger[:, 0], f.lead[:, 0])


def _shot_rows(layout: TaskLayout, pool: ExampleTable, shots: np.ndarray, k: np.ndarray, f: _Format,
               inputs_prefix: np.ndarray, delimiter_prefix: np.ndarray, separator: np.ndarray) -> np.ndarray:
    """[b, MAX_SHOTS, slots] exemplar units (prefix, inputs, delimiter + targets prefix, target,
    separator) for the first k exemplars of each row, zeros elsewhere; only the used ones are built."""
    rows, slots = np.nonzero(np.arange(fp.MAX_SHOTS)[None, :] < k[:, None])
    picked = _Format(*(getattr(f, field.name)[rows] for field in dataclasses.fields(_Format)))
    x, y = _units(layout, pool, shots[rows, slots][:, None], picked, shot=True)
    column = lambda a: a[rows][:, None]  # noqa: E731
    units = np.concatenate(
        [column(inputs_prefix), x[:, 0], column(delimiter_prefix), y[:, 0], column(separator)], axis=-1)
    out = np.zeros((len(k), fp.MAX_SHOTS, units.shape[-1]), np.int64)
    out[rows, slots] = units
    return out


def _fit(
    shot_rows: np.ndarray, query: np.ndarray, k: np.ndarray, budget: Budget | None
) -> np.ndarray:
    """[b, MAX_SHOTS] which of the first k exemplars stay: the last ones whose tokens, with the query and
    EOS, fit FLAN's few-shot budget."""
    used = np.arange(fp.MAX_SHOTS)[None, :] < k[:, None]
    if budget is None:
        return used
    lengths, inputs_length = budget
    shot_len = np.where(used, lengths(shot_rows).sum(axis=-1), 0)
    room = fp.few_shot_budget(inputs_length) - lengths(query).sum(axis=-1) - 1
    from_end = np.cumsum(shot_len[:, ::-1], axis=1)[:, ::-1]
    return used & (from_end <= room[:, None])
