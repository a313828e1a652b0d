"""Which exception to show a user, how, and with which exit status.

Data errors (SourceError, FormatError: ValueErrors naming file, line and field) can be raised while
TensorFlow traces a tf.data function; autograph then raises its own StagingError with the original as
`__context__`. Entry points print the original's message instead of a traceback through TF internals.

Exit statuses (the README's table): 2 for what the user must fix in the command itself (`ConfigError`:
bad flags, gin, settings, an unknown task, a MODEL_DIR held by another run), 1 for a run error (bad data,
NaN loss, a failed save, a damaged checkpoint), 75 for a preemption (training/preemption.py).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

# Errors whose message is written for the user (bad input, missing file, NaN loss, failed save).
USER_ERRORS = (ValueError, OSError, FloatingPointError, KeyError)
RUN_ERROR_EXIT_CODE, USAGE_EXIT_CODE = 1, 2
_GIN_NOTE = "\n  In call to configurable"  # what gin appends to an error raised inside a configurable


class ConfigError(ValueError):
    """A setting, flag or name the user gave is wrong (exit status 2); the message names it."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then its cause (or context), and so on, each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def user_error(error: BaseException) -> BaseException | None:
    """`error` or the first exception in its cause/context chain that is a USER_ERRORS type; None if none
    (a bug: let it raise with its traceback)."""
    return next((e for e in _chain(error) if isinstance(e, USER_ERRORS)), None)


def message(error: BaseException) -> str:
    """The error's message as a user reads it: without gin's "In call to configurable ..." trailer."""
    text = str(error)
    return text.split(_GIN_NOTE)[0].rstrip() if _GIN_NOTE in text else text


def exit_code(error: BaseException) -> int:
    """2 for a ConfigError anywhere in the chain (the command must change), else 1."""
    if any(isinstance(e, ConfigError) for e in _chain(error)):
        return USAGE_EXIT_CODE
    return RUN_ERROR_EXIT_CODE


def unknown_name(flag: str, name: object, known: Iterable[str], kind: str = "task or mixture",
                 hint: str = "") -> ConfigError:
    """The one "unknown name" error of every verb: `flag`=`name` is not a registered `kind`; did you mean
    the closest known names (difflib, as argparse and git suggest)? `hint`: how to make a name known."""
    close = difflib.get_close_matches(str(name), sorted(known), n=3) if isinstance(name, str) else []
    guess = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return ConfigError(f"{flag}={name!r} is not a registered {kind}{guess}" + (f" ({hint})" if hint else ""))
