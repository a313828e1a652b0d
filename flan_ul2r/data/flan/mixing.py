"""How the Flan mixture weighs its families, tasks and styles (Chung et al. 2022 section 2.1 and
Appendix E Table 23; FLAN v2 `flan/v2/mixtures.py`, `mixtures_utils.py`, `run_example.py`).

- Across families: a rate per family (the paper's Proportion B by default).
- Inside a family: examples-proportional, each task's count capped (per-family caps).
- Styles per family: FLAN renders Muffin (flan2021) and T0-SF in four variants, zero-/few-shot x with or
  without options, weighted equally; NIV2 and Dialog only with options (zero-/few-shot 50/50); the CoT
  family only in CoT formats, zero-/few-shot 50/50. CoT formats never appear outside the CoT family
  unless a style mix is rebound (gin: `flan_mixture.style_mixes`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

# Mixture rates across families. Paper (Chung et al. 2022, Table 23, "Proportion B"): Muffin 46.0%,
# T0-SF 27.9%, NIV2 24.2%, CoT 1.8%. FLAN v2 repo `run_example.py` flan2022_submix: 0.40 / 0.32 / 0.20 /
# 0.05 / dialog 0.03.
FAMILY_RATES_PAPER = {"muffin": 46.0, "t0sf": 27.9, "niv2": 24.2, "cot": 1.8}
FAMILY_RATES_FLAN2022 = {"muffin": 0.40, "t0sf": 0.32, "niv2": 0.20, "cot": 0.05, "dialog": 0.03}
# Per-task example caps inside a family (FLAN v2 mixtures.py; paper Table 23): 30k / 20k / 5k / 100k / 200k.
FAMILY_CAPS = {"muffin": 30_000, "t0sf": 20_000, "niv2": 5_000, "cot": 100_000, "dialog": 200_000}
FAMILIES = tuple(FAMILY_CAPS)

_FOUR_VARIANTS = {"zs_noopt": 0.25, "zs_opt": 0.25, "fs_noopt": 0.25, "fs_opt": 0.25}
_OPTIONS_ONLY = {"zs_opt": 0.5, "fs_opt": 0.5}
FAMILY_STYLE_MIXES = {
    "muffin": _FOUR_VARIANTS,
    "t0sf": _FOUR_VARIANTS,
    "niv2": _OPTIONS_ONLY,
    "dialog": _OPTIONS_ONLY,
    "cot": {"cot": 0.5, "fs_cot": 0.5},
}
# FLAN v2 mixtures.py gives the input-inverted ("-II") tasks rate 0.3 inside the CoT and Dialog
# sub-mixtures; here inversion is off unless bound (gin: `flan_mixture.inversion_rate`).
FLAN_INVERSION_RATE = 0.3


def check_family(task: str, family: str) -> None:
    if family not in FAMILY_CAPS:
        raise ValueError(f"task {task!r}: unknown family {family!r}; families {sorted(FAMILY_CAPS)}")


def family_weights(
    sizes: Mapping[str, int],
    families: Mapping[str, str],
    rates: Mapping[str, float],
    caps: Mapping[str, int],
    uncapped: Collection[str] = (),
) -> list[tuple[str, float]]:
    """Task rates: family rate (normalized over the families present) x the task's share of its family,
    examples-proportional with the family's cap on each task's count (`sizes`; not for `uncapped`)."""
    for fam, rate in rates.items():
        if not rate > 0:
            raise ValueError(
                f"flan mixture: family {fam!r} has rate {rate!r}; rates must be > 0 (drop the family instead)"
            )
    by_family: dict[str, list[str]] = {}
    for task in sizes:
        by_family.setdefault(families[task], []).append(task)
    missing = sorted(set(by_family) - set(rates))
    if missing:
        raise ValueError(f"flan mixture: no rate for families {missing}; rates given for {sorted(rates)}")
    present = {f: rates[f] for f in by_family}
    total = sum(present.values())
    out = []
    for fam, names in sorted(by_family.items()):
        capped = {t: sizes[t] if t in uncapped else min(sizes[t], caps.get(fam, sizes[t])) for t in names}
        denom = sum(capped.values())
        out += [(t, present[fam] / total * capped[t] / denom) for t in names]
    return out


def style_mix_for(
    family: str, style_mixes: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, float]:
    """The family's style mix (FAMILY_STYLE_MIXES unless `style_mixes` rebinds it)."""
    mixes = {**FAMILY_STYLE_MIXES, **(style_mixes or {})}
    return dict(mixes[family])


def check_style_mix(name: str, mix: Mapping[str, float], styles: Sequence[str]) -> None:
    bad = sorted(set(mix) - set(styles))
    if bad or not mix or any(w < 0 for w in mix.values()) or not sum(mix.values()) > 0:
        raise ValueError(
            f"task {name!r}: style mix {dict(mix)} must give non-negative weights, summing to "
            f"more than 0, to styles among {list(styles)}" + (f" (unknown: {bad})" if bad else "")
        )
