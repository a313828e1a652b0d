"""Answer extraction from model outputs, as the papers score them.

- Chain-of-thought: the text after the last "the answer is" (Wei et al. 2022 exemplars end with
  "The answer is X."; Suzgun et al. 2022's BBH prompts and Flan's CoT targets with "So the answer is X.").
  When a CoT output never says it, the answer-shaped extractor runs over the whole output and takes the
  *last* match (the last number for math, as Wei et al. 2022 section 3.1 score GSM8K).
- Direct answers: the first non-empty line of the output, then the answer-shaped extractor.
- Shapes: `letter` (MMLU: the option letter, Hendrycks et al. 2021), `number` (GSM8K / MGSM: the last
  number, commas and a trailing ".0" removed), `bbh` (the target's own form: "(A)", True/False, valid/invalid,
  Yes/No, a number, or free words), `option` (one of an example's option strings), `text` (normalised text).

Every extractor returns a string comparable with the reference after `metrics.normalize_answer`, or None
when the output holds no answer of that shape (scored as wrong).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*", re.IGNORECASE)
_MARKDOWN = re.compile(r"[*`#_]+")
# Digit grouping (Unicode CLDR number formats): English-style "1,234.5"; the decimal-comma style of German,
# Spanish, French and Russian writes "1.234,5", "1 234,5" or "1 234,5" (a no-break or narrow no-break space).
# A group separator is followed by exactly three digits; a leading 0 never starts a grouped number.
_SPACES = "\u00a0\u202f\u2009"
_NUMBER = re.compile(
    rf"-?\$?[1-9]\d{{0,2}}(?:[,{_SPACES}]\d{{3}})+(?:\.\d+)?(?!\d)|-?\$?\d+(?:\.\d+)?|-?\.\d+")
_NUMBER_DECIMAL_COMMA = re.compile(
    rf"-?\$?[1-9]\d{{0,2}}(?:[. {_SPACES}]\d{{3}})+(?:,\d+)?(?!\d)|-?\$?\d+(?:[.,]\d+)?")
SHAPES = ("letter", "number", "bbh", "option", "text")


def strip_markup(text: str) -> str:
    """Drops markdown emphasis/code marks and surrounding quotes, collapses whitespace."""
    text = _MARKDOWN.sub("", text)
    return " ".join(text.split()).strip().strip("\"'“”‘’")


def answer_span(output: str) -> str | None:
    """What follows the last "the answer is" up to the end of its line, without the final period."""
    matches = list(_ANSWER_IS.finditer(output))
    if not matches:
        return None
    rest = output[matches[-1].end():].split("\n", 1)[0]
    rest = strip_markup(rest)
    return rest[:-1].rstrip() if rest.endswith(".") else rest


def first_line(output: str) -> str:
    for line in output.split("\n"):
        if line.strip():
            return line.strip()
    return ""


def normalize_number(text: str, *, decimal_comma: bool = False) -> str | None:
    """'1,234' -> '1234', '$18.00' -> '18', '-3.50' -> '-3.5'; with `decimal_comma` (German, Spanish, French,
    Russian) '70.000' -> '70000', '70 000' -> '70000', '2,5' -> '2.5'. None if `text` is not a number."""
    t = text.replace("$", "").strip().rstrip(".")
    for space in " " + _SPACES:
        if space in t:  # a thousands separator ('70 000', '2 125'), never a list ('6 18 37')
            if not _grouped(t.replace(",", ".").split(".")[0], space):
                return None
            t = t.replace(space, "")
    if decimal_comma:
        t = t.replace(".", "") if "," in t or _grouped(t, ".") else t
        t = t.replace(",", ".")
    else:
        t = t.replace(",", "")
    try:
        value = float(t)
    except ValueError:
        return None
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _grouped(t: str, sep: str) -> bool:
    """'70.000' is 70 thousand in a decimal-comma language: every part after the first has 3 digits."""
    parts = t.lstrip("-").split(sep)
    return len(parts) > 1 and parts[0][:1] not in ("", "0") and all(len(p) == 3 for p in parts[1:])


def last_number(text: str, *, decimal_comma: bool = False) -> str | None:
    """The last number in `text`, normalised (GSM8K/MGSM: Wei et al. 2022 score the last number), read in
    the language's digit grouping (`decimal_comma`: "Die Antwort ist 70.000." -> 70000)."""
    found = (_NUMBER_DECIMAL_COMMA if decimal_comma else _NUMBER).findall(text)
    return normalize_number(found[-1], decimal_comma=decimal_comma) if found else None


def option_letter(text: str, letters: str = "ABCD", *, last: bool = False) -> str | None:
    """The chosen option letter: "Answer: (B)", "The answer is C.", "(D) Paris", "B", "**A.** ...".

    Preference: an explicit "answer is/answer:" letter; then, for a direct answer, the letter that opens the
    text ("B.", "B)", "(B)", "B:"; "D. (A), (B), and (C)" is D: option texts may name other letters), then
    the first parenthesised letter; then "option/choice B". `last=True` (CoT outputs without "the answer is")
    prefers the last parenthesised letter to the opening one.
    """
    text = _MARKDOWN.sub("", text)
    cls = f"[{letters}]"
    explicit = re.findall(rf"answer\s*(?:is)?\s*[:\-]?\s*\(?({cls})\)?(?![\w])", text, re.IGNORECASE)
    if explicit and explicit[-1].upper() in letters:
        return explicit[-1].upper()
    paren = re.findall(rf"\(({cls})\)", text)
    opening = re.match(rf"\s*\(?({cls})(?:[.):,]|\s|$)", text)
    if last and paren:
        return paren[-1]
    if opening:
        return opening.group(1)
    if paren:
        return paren[0]
    named = re.findall(rf"\b(?:option|choice)\s*({cls})\b", text, re.IGNORECASE)
    return named[-1] if named else None


def option_text(text: str, options: Sequence[str], *, last: bool = False) -> str | None:
    """The option string the output names (whole word, case-insensitive); the first (or last) mentioned."""
    hits = []
    for opt in options:
        for m in re.finditer(rf"(?<!\w){re.escape(opt)}(?!\w)", text, re.IGNORECASE):
            hits.append((m.start(), opt))
    if not hits:
        return None
    hits.sort()
    return hits[-1][1] if last else hits[0][1]


def bbh_shape(target: str) -> str:
    """The answer form of a BBH target: `paren` "(A)", `bool` True/False, `validity` valid/invalid,
    `yesno` Yes/No, `number`, or `words` (dyck_languages, word_sorting)."""
    if re.fullmatch(r"\([A-Z]\)", target):
        return "paren"
    if target in ("True", "False"):
        return "bool"
    if target in ("valid", "invalid"):
        return "validity"
    if target.lower() in ("yes", "no"):
        return "yesno"
    if normalize_number(target) is not None:
        return "number"
    return "words"


def bbh_answer(text: str, target: str, *, last: bool = False) -> str | None:
    """An answer in the same form as BBH's `target` (so exact match compares like with like)."""
    shape = bbh_shape(target)
    if shape == "paren":
        letter = option_letter(text, "ABCDEFGHIJKLMNOPQR", last=last)
        return f"({letter})" if letter else None
    words = {"bool": ("True", "False"), "validity": ("valid", "invalid"), "yesno": ("Yes", "No")}.get(shape)
    if words:
        found = option_text(text, words, last=last)
        if found is None:
            return None
        return found.lower() if target.islower() else found
    if shape == "number":
        return last_number(text) if last else _first_number(text)
    out = strip_markup(text)
    return out[:-1].rstrip() if out.endswith(".") else out


def _first_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return normalize_number(found[0]) if found else None


def extract(output: str, shape: str, *, cot: bool, target: str = "", options: Sequence[str] = (),
            letters: str = "ABCD", decimal_comma: bool = False) -> str | None:
    """The answer in `output` for a protocol: CoT -> the "answer is" span (else the last match over the
    whole output); direct -> the first non-empty line. `decimal_comma`: numbers in that digit grouping."""
    if shape not in SHAPES:
        raise ValueError(f"unknown answer shape {shape!r}; shapes are {SHAPES}")
    span = answer_span(output) if cot else first_line(output)
    fallback = cot and span is None
    text = output if fallback else (span or "")
    if shape == "letter":
        return option_letter(text, letters, last=fallback)
    if shape == "number":
        return last_number(text, decimal_comma=decimal_comma)
    if shape == "bbh":
        return bbh_answer(text, target, last=fallback)
    if shape == "option":
        return option_text(text, options, last=fallback)
    if fallback:
        return None
    out = strip_markup(text)
    return out[:-1].rstrip() if out.endswith(".") else out
