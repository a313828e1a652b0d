"""Which exception to show a user. Data errors (SourceError, FormatError: ValueErrors naming file, line
and field) can be raised while TensorFlow traces a tf.data function; autograph then raises its own
StagingError with the original as `__context__`. Entry points print the original's message instead of a
traceback through TF internals.
"""
from __future__ import annotations

# Errors whose message is written for the user (bad input, missing file, NaN loss, failed save).
USER_ERRORS = (ValueError, OSError, FloatingPointError, KeyError)


def user_error(error: BaseException) -> BaseException | None:
    """`error` or the first exception in its cause/context chain that is a USER_ERRORS type; None if none
    (a bug: let it raise with its traceback)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, USER_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
