"""Flan templates: one example rendered zero-shot or few-shot, with or without options, with or without
chain-of-thought - the Flan Collection's formats (Chung et al. 2022 section 2.1; FLAN v2 `templates.py`).

Styles (FLAN v2's sub-mixture names): `zs_noopt`, `zs_opt` (the options listed), `fs_noopt`, `fs_opt`
(exemplars before the query), `cot` (zero-shot chain-of-thought: target = rationale + answer) and
`fs_cot` (exemplars with rationales; options are shown when the example has them, as FLAN's
`cot_zsopt`/`cot_fsopt`). `render` is the text reference: the training fast path (`flan_plan`) builds the
same text from pre-tokenized pieces, and tests compare the two.

The formatting choices are a `RenderFormat` (FLAN FewShotPattern fields, the options header and marker,
the CoT trigger and answer lead); its defaults are FLAN's defaults with the evaluation CoT trigger.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping, Sequence
from typing import Any

from flan_ul2r.data.flan.patterns import EVAL_COT_TRIGGER, OPTION_MARKERS, OptionMarker

STYLES = ("zs_noopt", "zs_opt", "fs_noopt", "fs_opt", "cot", "fs_cot")
COT_STYLES = ("cot", "fs_cot")
X_Y_DELIMITER = "\n\n"  # FLAN v2 FewShotPattern.x_y_delimiter default
EXAMPLE_SEPARATOR = "\n\n\n"  # FLAN v2 FewShotPattern.example_separator default
COT_TRIGGER = EVAL_COT_TRIGGER  # the default trigger of `render` (evaluation); training uses COT_TRIGGERS
OPTIONS_HEADER = "OPTIONS:"  # FLAN v2 options header


def is_few_shot(style: str) -> bool:
    return style.startswith("fs_")


def is_cot(style: str) -> bool:
    return style in COT_STYLES


def shows_options(style: str) -> bool:
    return style.endswith("_opt") or is_cot(style)


def zero_shot_of(style: str) -> str:
    """The zero-shot style an example falls back to when no exemplar fits (FLAN drops those)."""
    return {"fs_noopt": "zs_noopt", "fs_opt": "zs_opt", "fs_cot": "cot"}.get(style, style)


class TemplateError(ValueError):
    """A template that cannot render an example; names the task, template and field."""


@dataclasses.dataclass(frozen=True)
class RenderFormat:
    """One draw of FLAN's formatting choices. Prefixes apply to few-shot styles only; the text after a
    non-empty prefix starts with a space."""

    inputs_prefix: str = ""
    targets_prefix: str = ""
    x_y_delimiter: str = X_Y_DELIMITER
    example_separator: str = EXAMPLE_SEPARATOR
    options_header: str = OPTIONS_HEADER
    marker: OptionMarker = OPTION_MARKERS[0]
    cot_trigger: str = "\n\n" + EVAL_COT_TRIGGER
    answer_lead: str = " So the answer is"


DEFAULT_FORMAT = RenderFormat()


@dataclasses.dataclass(frozen=True)
class Template:
    """`inputs` / `targets` are str.format patterns over the example's fields; `{options_}` (at most once,
    not first) is where the options list goes (empty in *_noopt styles)."""

    inputs: str
    targets: str = "{answer}"

    def fields(self) -> set[str]:
        names = set()
        for pattern in (self.inputs, self.targets):
            names |= {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
        return names - {"options_"}

    def input_parts(self) -> tuple[str, str]:
        """The inputs pattern before and after `{options_}`."""
        before, _, after = self.inputs.partition("{options_}")
        return before, after

    def target_parts(self) -> tuple[str, str] | None:
        """The targets pattern before and after `{answer}`, or None when it has no `{answer}`."""
        if "{answer}" not in self.targets:
            return None
        before, _, after = self.targets.partition("{answer}")
        return before, after


def fill(pattern: str, fields: Mapping[str, Any], task: str, index: int) -> str:
    try:
        return pattern.format(**fields)
    except KeyError as e:
        raise TemplateError(
            f"task {task!r}: template {index} references field {e.args[0]!r}; the example "
            f"has fields {sorted(fields)}"
        ) from None


def check_templates(task: str, templates: Sequence[Template], example: Mapping[str, Any]) -> None:
    """Fails early (at registration) when a template cannot render the task's examples."""
    if not templates:
        raise TemplateError(f"task {task!r}: no templates")
    for i, t in enumerate(templates):
        missing = t.fields() - set(example)
        if missing:
            raise TemplateError(
                f"task {task!r}: template {i} references field {sorted(missing)[0]!r}; the "
                f"example has fields {sorted(example)}"
            )
        if t.inputs.count("{options_}") > 1 or t.inputs.startswith("{options_}"):
            raise TemplateError(
                f"task {task!r}: template {i} must have at most one '{{options_}}', not at "
                f"the start: {t.inputs!r}"
            )
        if t.targets.count("{answer}") > 1:
            raise TemplateError(f"task {task!r}: template {i} targets use '{{answer}}' more than once")


def options_block(options: Sequence[str], fmt: RenderFormat) -> str:
    """FLAN's options list: an optional header line, then one marked option per line."""
    head = "\n" + fmt.options_header if fmt.options_header else ""
    return head + "".join(f"\n{fmt.marker.label(j)} {o}" for j, o in enumerate(options))


def answer_text(example: Mapping[str, Any], options_shown: bool, fmt: RenderFormat, task: str) -> str:
    """The answer as the target shows it: the option's label when lettered options are shown."""
    answer = str(example["answer"])
    if options_shown and fmt.marker.answer:
        options = list(example["options"])
        if answer not in options:
            raise TemplateError(f"task {task!r}: answer {answer!r} is not one of the options {options}")
        return str(fmt.marker.target(options.index(answer)))
    return answer


def render_one(
    example: Mapping[str, Any],
    template: Template,
    style: str,
    fmt: RenderFormat,
    *,
    task: str = "?",
    template_index: int = 0,
) -> tuple[str, str]:
    """(x, y) of one example without few-shot prefixes: inputs text and target text."""
    opts = list(example.get("options") or ())
    shown = bool(opts) and shows_options(style) and "{options_}" in template.inputs
    fields = {**example, "options_": options_block(opts, fmt) if shown else ""}
    x = fill(template.inputs, fields, task, template_index)
    answer = answer_text(example, shown, fmt, task)
    if is_cot(style):
        if not example.get("rationale"):
            raise TemplateError(
                f"task {task!r}: style {style} needs a 'rationale' field; the example has "
                f"fields {sorted(example)}"
            )
        return x + fmt.cot_trigger, f"{example['rationale']}{fmt.answer_lead} {answer}."
    return x, fill(template.targets, {**fields, "answer": answer}, task, template_index)


def _lead(prefix: str, text: str) -> str:
    return f"{prefix} {text}" if prefix else text


def render(
    example: Mapping[str, Any],
    template: Template,
    style: str,
    exemplars: Sequence[Mapping[str, Any]] = (),
    *,
    task: str = "?",
    template_index: int = 0,
    fmt: RenderFormat = DEFAULT_FORMAT,
) -> tuple[str, str]:
    """(inputs, targets) text of `example` in `style`; exemplars are used by the few-shot styles only.

    Few-shot: each exemplar is `inputs_prefix x x_y_delimiter targets_prefix y`, exemplars and query are
    joined by `example_separator`; the query ends with `x_y_delimiter targets_prefix` when there is a
    targets prefix (FLAN FewShotPattern); the target stays the plain `y` (inputs and targets are
    tokenized apart and EOS-separated, Flan section 2.2). A few-shot style with no exemplars renders as
    zero-shot.
    """
    if style not in STYLES:
        raise TemplateError(f"task {task!r}: unknown style {style!r}; styles are {STYLES}")
    x, y = render_one(example, template, style, fmt, task=task, template_index=template_index)
    if not (is_few_shot(style) and exemplars):
        return x, y
    units = []
    for ex in exemplars:
        ex_x, ex_y = render_one(ex, template, style, fmt, task=task, template_index=template_index)
        units.append(_lead(fmt.inputs_prefix, ex_x) + fmt.x_y_delimiter + _lead(fmt.targets_prefix, ex_y))
    query = _lead(fmt.inputs_prefix, x)
    if fmt.targets_prefix:
        query += fmt.x_y_delimiter + fmt.targets_prefix
    return fmt.example_separator.join(units + [query]), y


def styles_for(example: Mapping[str, Any], mix: Mapping[str, float]) -> dict[str, float]:
    """The style mix restricted to what an example supports (a rationale for CoT), renormalized;
    `_opt` styles stay (an example without options renders them as `_noopt`)."""
    ok = {s: w for s, w in mix.items() if w > 0 and (not is_cot(s) or example.get("rationale"))}
    if not ok:
        ok = {"zs_noopt": 1.0}
    total = sum(ok.values())
    return {s: w / total for s, w in ok.items()}
