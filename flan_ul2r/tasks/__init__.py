"""SeqIO registrations (installed as `flan_ul2r.tasks`): `ul2r`, `flan`, `evals`.

Importing a module registers its tasks and mixtures; `flan_ul2r.tasks.import_all()` imports all of them.
"""
from __future__ import annotations

import importlib

MODULES = ("ul2r", "flan", "evals")


def import_all() -> None:
    for name in MODULES:
        importlib.import_module(f"flan_ul2r.tasks.{name}")


def register_after_gin() -> None:
    """Re-registers what gin bindings choose (corpus, vocabulary, denoisers, Flan rates and caps)."""
    for name in MODULES:
        importlib.import_module(f"flan_ul2r.tasks.{name}").register_after_gin()
