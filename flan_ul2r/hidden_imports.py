"""Import a library without the optional extras it would load for features flan-ul2r never uses.

Some libraries import another package whenever it is installed, only to support a feature of theirs that
we do not call: tensorboardX imports torch (to accept torch tensors; we log floats), and Keras, which
TensorFlow imports eagerly, imports scikit-learn (its sklearn wrappers) and pandas (DataFrame inputs to
`fit`). Each costs CPU and memory at every start. `without("torch")` makes `import torch` fail inside
the block as if torch were absent (`sys.modules[name] = None`, Python's documented way to block an
import); the library takes its own "not installed" branch, and after the block the package imports
normally again for whoever needs it. A package that is already loaded is left alone.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(*names: str) -> Iterator[list[str]]:
    """Blocks the import of the top-level packages `names` that are not loaded yet; yields those blocked."""
    blocked = [n for n in names if n not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield blocked
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]
