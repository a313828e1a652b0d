"""A small registered UL2R mixture over real prose (this repo's docs), for trainer tests."""
from __future__ import annotations

import argparse
import collections
import inspect
import json
import textwrap
import unittest

from flan_ul2r.data.ul2r_tasks import array_corpus, register_ul2r_mixture
from flan_ul2r.data.vocabularies import ByteVocabulary

TOY_MIXTURE = "toy_ul2r"
LENGTHS = {"inputs": 32, "targets": 32}


def register_toy_mixture() -> str:
    vocab = ByteVocabulary()
    # Stable prose (not this repository's files, which change while one edits): stdlib documentation.
    modules = (argparse, collections, json, textwrap, unittest)
    objects = [m for m in modules] + [f for m in modules for _, f in sorted(vars(m).items()) if callable(f)]
    text = " ".join(inspect.getdoc(o) or "" for o in objects)
    docs = [vocab.encode(text[i:i + 3000]) for i in range(0, min(len(text), 120_000), 3000)]
    register_ul2r_mixture(TOY_MIXTURE, array_corpus(docs), vocab)
    return TOY_MIXTURE
