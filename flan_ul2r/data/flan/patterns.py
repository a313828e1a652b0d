"""The pools FLAN v2 draws its formatting from, written for this project (not FLAN's text).

Behaviour follows google-research/FLAN `flan/v2/templates.py` (FewShotPattern: inputs/targets prefixes,
x-y delimiter, example separator; `format_options_non_deterministic`: a random options header, a random
item marker, and the target rewritten to the item's letter when the markers are letters),
`flan/v2/few_shot.py` (the `0to10_x_shot` exemplar count and the 1920-token prompt budget) and
`flan/v2/mixtures.py` (CoT formats only in the CoT sub-mixture). The strings are our own.

Every choice is an index into one of these tuples, so a rendered example is described by a few integers
(`templates.RenderFormat`) and the same indices select pre-tokenized pieces on the fast path.
"""

from __future__ import annotations

import dataclasses
import math

# Zero-shot CoT *evaluation* trigger (Chung et al. 2022 section 2.3: "let's think step-by-step", after
# Kojima et al. 2022). Kept out of the training triggers below so that zero-shot CoT evaluation stays
# out of distribution, as in FLAN, whose CoT templates phrase their instructions differently.
EVAL_COT_TRIGGER = "Let's think step by step."

# Training CoT triggers, appended to the question (each asks for the reasoning before the answer).
COT_TRIGGERS = (
    "\n\nGive your reasoning, then the answer.",
    "\nExplain your reasoning before answering.",
    "\n\nWork through it, then answer.",
    " Reason it out first.",
    "\nShow your working.",
    "\n\nThink it over carefully and explain, then give the final answer.",
)

# CoT target = rationale + ANSWER_LEADS[i] + " " + answer + "." (FLAN's CoT targets end in the answer).
ANSWER_LEADS = (
    " So the answer is",
    " Therefore, the answer is",
    " The answer is",
    " So the final answer is",
    " Thus, the answer is",
)

# Few-shot (inputs_prefix, targets_prefix) pairs; FLAN's FewShotPattern default is ("", "") and the
# paper (section 2.1, Figure 3) draws exemplar delimiters such as "Q:"/"A:" at random per example.
# Prefixes end without a space; the space before the text is part of the text piece.
FEW_SHOT_PREFIXES = (
    ("", ""),
    ("Q:", "A:"),
    ("Question:", "Answer:"),
    ("Input:", "Output:"),
    ("Problem:", "Solution:"),
    ("Query:", "Response:"),
    ("Task:", "Result:"),
)
X_Y_DELIMITERS = ("\n\n", "\n")  # FewShotPattern.x_y_delimiter (default "\n\n")
EXAMPLE_SEPARATORS = ("\n\n\n", "\n\n", "\n")  # FLAN `template_mix`: "\n", "\n\n" or "\n\n\n"

# Options headers (FLAN draws among 16, one of them empty).
OPTION_HEADERS = (
    "OPTIONS:",
    "Options:",
    "Choices:",
    "Pick one:",
    "Choose from:",
    "Select one:",
    "Possible answers:",
    "Answer choices:",
    "Available options:",
    "Your options are:",
    "Pick your answer from:",
    "Choose your answer from:",
    "Candidates:",
    "Select from:",
    "Answers to pick from:",
    "",
)


@dataclasses.dataclass(frozen=True)
class OptionMarker:
    """How option j is marked: `lead.format(label(j))` before the option text; lettered markers rewrite
    the target to `answer.format(label(j))` (FLAN's format_options_non_deterministic)."""

    lead: str  # e.g. "({})" -> "(B)"; "-" for a bullet
    labels: str  # label alphabet ("" for bullets)
    answer: str = ""  # target for option j ("" = the option's text)

    def label(self, j: int) -> str:
        if not self.labels:
            return self.lead
        if j >= len(self.labels):
            raise ValueError(f"option marker {self.lead!r} labels at most {len(self.labels)} options")
        return self.lead.format(self.labels[j])

    def target(self, j: int) -> str | None:
        return self.answer.format(self.labels[j]) if self.answer else None


UPPER, LOWER, DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "123456789"
OPTION_MARKERS = (
    OptionMarker("-", ""),
    OptionMarker("*", ""),
    OptionMarker("+", ""),
    OptionMarker("--", ""),
    OptionMarker("({})", UPPER, "({})"),
    OptionMarker("{}.", UPPER, "{}"),
    OptionMarker("{})", UPPER, "{}"),
    OptionMarker("({})", LOWER, "({})"),
    OptionMarker("{}.", LOWER, "{}"),
    OptionMarker("{}.", DIGITS, "{}"),
)
LETTERED = tuple(i for i, m in enumerate(OPTION_MARKERS) if m.answer)
BULLETED = tuple(i for i, m in enumerate(OPTION_MARKERS) if not m.answer)

# FLAN few_shot.py `0to10_x_shot`: 25 candidate exemplars, each kept when it was rendered with the query's
# template (about 1 template in 10), at most 10; an example left with no exemplar is dropped. Dropping
# is conditioning on >= 1, so the number of shots here is Binomial(25, 1/10) given >= 1, capped at 10.
FLAN_CANDIDATE_EXEMPLARS, FLAN_TEMPLATE_MATCH, MAX_SHOTS = 25, 0.1, 10
# FLAN prunes few-shot prompts to 1920 tokens of the 2048 inputs (few_shot.py); we keep that ratio.
FEW_SHOT_BUDGET = 1920 / 2048


def shot_count_cdf(
    candidates: int = FLAN_CANDIDATE_EXEMPLARS, p: float = FLAN_TEMPLATE_MATCH, max_shots: int = MAX_SHOTS
) -> tuple[float, ...]:
    """CDF over k = 1..max_shots of Binomial(candidates, p) given k >= 1 (mass above max_shots -> max)."""
    pmf = [math.comb(candidates, k) * p**k * (1 - p) ** (candidates - k) for k in range(candidates + 1)]
    kept = pmf[1:max_shots] + [sum(pmf[max_shots:])]
    total = sum(kept)
    cdf, acc = [], 0.0
    for mass in kept:
        acc += mass / total
        cdf.append(acc)
    cdf[-1] = 1.0
    return tuple(cdf)


def few_shot_budget(inputs_length: int) -> int:
    """Tokens the whole few-shot prompt (exemplars + query + EOS) may take: 1920 of 2048 (FLAN)."""
    return int(inputs_length * FEW_SHOT_BUDGET)
