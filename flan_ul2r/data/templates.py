"""Flan templates: one example rendered zero-shot or few-shot, with or without options, with or without
chain-of-thought - the Flan Collection's formats (Chung et al. 2022 section 2.1; FLAN v2 `templates.py`).

Styles (FLAN v2's sub-mixture names): `zs_noopt`, `zs_opt` (answer options listed after "OPTIONS:"),
`fs_noopt`, `fs_opt` (k exemplars from the task's own train split before the query), `cot` (zero-shot with
the trigger "Let's think step by step.", target = rationale + answer) and `fs_cot` (exemplars with
rationales). Few-shot layout follows FLAN v2's FewShotPattern defaults: input and target joined by
"\\n\\n", exemplars separated by "\\n\\n\\n".
"""
from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping, Sequence
from typing import Any

STYLES = ("zs_noopt", "zs_opt", "fs_noopt", "fs_opt", "cot", "fs_cot")
X_Y_DELIMITER = "\n\n"  # FLAN v2 FewShotPattern.x_y_delimiter
EXAMPLE_SEPARATOR = "\n\n\n"  # FLAN v2 FewShotPattern.example_separator
COT_TRIGGER = "Let's think step by step."  # Flan paper: zero-shot CoT trigger "let's think step-by-step"
OPTIONS_HEADER = "OPTIONS:"  # FLAN v2 options formatting
COT_TARGET = "{rationale} So the answer is {answer}."  # Flan CoT exemplars end with the answer


class TemplateError(ValueError):
    """A template that cannot render an example; names the task, template and field."""


@dataclasses.dataclass(frozen=True)
class Template:
    """`inputs` / `targets` are str.format patterns over the example's fields; `{options_}` is where the
    options list goes (empty in *_noopt styles)."""

    inputs: str
    targets: str = "{answer}"

    def fields(self) -> set[str]:
        names = set()
        for pattern in (self.inputs, self.targets):
            names |= {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
        return names - {"options_"}


def format_options(options: Sequence[str]) -> str:
    return "\n" + OPTIONS_HEADER + "".join(f"\n- {o}" for o in options)


def _fill(pattern: str, fields: Mapping[str, Any], task: str, index: int) -> str:
    try:
        return pattern.format(**fields)
    except KeyError as e:
        have = sorted(k for k in fields if k != "options_")
        raise TemplateError(f"task {task!r}: template {index} references field {e.args[0]!r}; the example "
                            f"has fields {have}") from None


def check_templates(task: str, templates: Sequence[Template], example: Mapping[str, Any]) -> None:
    """Fails early (at registration) when a template names a field the task's examples lack."""
    if not templates:
        raise TemplateError(f"task {task!r}: no templates")
    for i, t in enumerate(templates):
        missing = t.fields() - set(example)
        if missing:
            raise TemplateError(f"task {task!r}: template {i} references field {sorted(missing)[0]!r}; the "
                                f"example has fields {sorted(example)}")


def _one(example: Mapping[str, Any], template: Template, index: int, task: str, options: bool, cot: bool
         ) -> tuple[str, str]:
    opts = example.get("options") or ()
    fields = {**example, "options_": format_options(opts) if options and opts else ""}
    x = _fill(template.inputs, fields, task, index)
    if cot:
        if "rationale" not in example:
            raise TemplateError(f"task {task!r}: style cot needs a 'rationale' field; the example has "
                                f"fields {sorted(example)}")
        y = _fill(COT_TARGET, fields, task, index)
    else:
        y = _fill(template.targets, fields, task, index)
    return x, y


def render(example: Mapping[str, Any], template: Template, style: str,
           exemplars: Sequence[Mapping[str, Any]] = (), *, task: str = "?", template_index: int = 0
           ) -> tuple[str, str]:
    """(inputs, targets) text of `example` in `style`; exemplars are used by the few-shot styles only."""
    if style not in STYLES:
        raise TemplateError(f"task {task!r}: unknown style {style!r}; styles are {STYLES}")
    options = style.endswith("_opt")
    cot = style in ("cot", "fs_cot")
    x, y = _one(example, template, template_index, task, options, cot)
    if cot:
        x = f"{x}{X_Y_DELIMITER}{COT_TRIGGER}"
    if style.startswith("fs_") and exemplars:
        shots = []
        for ex in exemplars:
            ex_x, ex_y = _one(ex, template, template_index, task, options, cot)
            if cot:
                ex_x = f"{ex_x}{X_Y_DELIMITER}{COT_TRIGGER}"
            shots.append(f"{ex_x}{X_Y_DELIMITER}{ex_y}")
        x = EXAMPLE_SEPARATOR.join(shots + [x])
    return x, y


def styles_for(example: Mapping[str, Any], mix: Mapping[str, float]) -> dict[str, float]:
    """The style mix restricted to what an example supports (options, rationale), renormalized."""
    ok = {s: w for s, w in mix.items() if w > 0
          and (not s.endswith("_opt") or example.get("options"))
          and (s not in ("cot", "fs_cot") or example.get("rationale"))}
    if not ok:
        ok = {"zs_noopt": 1.0}
    total = sum(ok.values())
    return {s: w / total for s, w in ok.items()}
