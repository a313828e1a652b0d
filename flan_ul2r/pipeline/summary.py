"""The three plain sentences that open report.md: what moved, what did not, and how that compares with the
papers' claims - written from the paired comparisons (pipeline/evidence.py), never by hand."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LABELS = {"base": "base", "ul2r": "+UL2R", "flan": "+Flan", "flan_ul2r": "+UL2R+Flan"}
# The claims a 2x2 can speak to: Flan improves held-out tasks and Flan-U beats Flan (Chung et al. 2022,
# section 2.3 and Table 5: normalized average 59.1 Flan-U-PaLM vs 58.4 Flan-PaLM 540B); UL2R adds infilling
# (Tay et al. 2022, section 4).
CLAIMS = (("flan", "base", "Heldin", "Flan should teach the tasks it trains on"),
          ("flan", "base", "Heldout", "Flan should lift held-out tasks (Chung et al. 2022, section 2.3)"),
          ("flan_ul2r", "flan", "Heldout", "Flan-U should beat Flan (Table 5 there: 59.1 vs 58.4 at 540B)"),
          ("ul2r", "base", "Infilling-Closed", "UL2R should make the model answer a blank in the denoising "
           "format (Tay et al. 2022, section 4)"),
          ("ul2r", "base", "Infilling", "UL2R should make infilling work (Tay et al. 2022, section 4)"),
          ("ul2r", "base", "LM-Loss", "UL2R should cost little causal-LM quality (U-PaLM section 3: no "
           "regression)"))


SINGLE_ROWS = ("Infilling", "Infilling-Closed", "Copying", "LM-Loss")


def headline(comparisons: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows the opening names: group averages (`Heldin-Avg`, `Heldout-Avg`) and single-row benchmarks
    (`SINGLE_ROWS`); per-style rows stay in the table. All rows when there are no such rows."""
    top = [c for c in comparisons if c["metric"].endswith("-Avg") or c["metric"] in SINGLE_ROWS]
    return top or list(comparisons)


def _pair(c: Mapping[str, Any]) -> str:
    return f"{LABELS[c['a']]} vs {LABELS[c['b']]}"


def _num(c: Mapping[str, Any], key: str, sign: str = "") -> str:
    """A loss (nats per byte, lower is better) to 2 decimals, a score in points to 1."""
    return f"{c[key]:{sign}.{2 if c.get('lower_is_better') else 1}f}"


def _grouped(cs: Sequence[Mapping[str, Any]]) -> str:
    by_pair: dict[str, list[str]] = {}
    for c in cs:
        note = " (lower is better)" if c.get("lower_is_better") else ""
        by_pair.setdefault(_pair(c), []).append(f"{c['metric']} {_num(c, 'diff', '+')}{note}")
    return "; ".join(f"{pair}: {', '.join(items)}" for pair, items in by_pair.items())


def _verdict(c: Mapping[str, Any]) -> str:
    if not c["significant"]:
        return "not shown: the interval includes 0"
    better = c["diff"] < 0 if c.get("lower_is_better") else c["diff"] > 0
    if c.get("lower_is_better"):  # the LM loss: a cost or a gain, its size in the numbers before
        return "a gain" if better else "a cost"
    return "agrees" if better else "the opposite"


def _claim(comparisons: Sequence[Mapping[str, Any]], a: str, b: str, group: str) -> Mapping[str, Any] | None:
    """The comparison for a claim: the group's average row if present, else its first row."""
    found = [c for c in comparisons if c["a"] == a and c["b"] == b and c["metric"].startswith(group)]
    preferred = [c for c in found if c["metric"] in (f"{group}-Avg", group)]
    return (preferred or found or [None])[0]


def opening(comparisons: Sequence[Mapping[str, Any]]) -> str:
    shown = headline(comparisons)
    moved = [c for c in shown if c["significant"]]
    still = [c for c in shown if not c["significant"]]
    first = (f"What moved (paired 95% interval excludes 0): {_grouped(moved)}." if moved
             else "Nothing moved: every paired 95% interval includes 0.")
    second = (f"What did not move (interval includes 0): {_grouped(still)}." if still
              else "Every compared score moved.")
    parts = []
    for a, b, group, claim in CLAIMS:
        c = _claim(comparisons, a, b, group)
        if c is not None:
            parts.append(f"{claim}: here {_pair(c)} on {c['metric']} is {_num(c, 'diff', '+')} "
                         f"[{_num(c, 'ci_low')}, {_num(c, 'ci_high')}], {_verdict(c)}")
    third = ("Against the papers: " + "; ".join(parts) + ".") if parts else \
        "None of the papers' claims (held-in and held-out gains, Flan-U vs Flan, infilling) was measured."
    return " ".join((first, second, third))
