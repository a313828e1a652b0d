"""A user's own seqio tasks, written as the README shows, for the plain-seqio tests.

`write_user_module(folder)` writes `my_tasks.py` (plain seqio: TextLineDataSource + seqio's own
preprocessors; a UL2R task made with `flan_ul2r.data.ul2.preprocessors.ul2_denoise`; broken tasks for the
bad-input tests) and its data files into `folder`, as a user's project directory would hold them.
"""
from __future__ import annotations

import inspect
import textwrap
from pathlib import Path


def qa_lines(n: int = 400) -> list[str]:
    """Tab-separated question/answer lines, all distinct, each side under 63 bytes."""
    return [f"What is {i} plus {(i * 37) % 101}?\t{i + (i * 37) % 101}" for i in range(n)]


def _prose_words() -> list[str]:
    import argparse
    import collections
    import json
    import unittest

    modules = (argparse, collections, json, textwrap, unittest, inspect)
    objects = list(modules) + [f for m in modules for _, f in sorted(vars(m).items()) if callable(f)]
    return " ".join(inspect.getdoc(o) or "" for o in objects).split()


def corpus_lines(n: int = 600) -> list[str]:
    """Prose documents, one per line, 4 to 123 words (so some are short)."""
    words = _prose_words()
    assert len(words) > 13 * n + 130
    return [" ".join(words[13 * i:13 * i + 4 + (i * 37) % 120]) for i in range(n)]


MODULE = '''
"""My seqio tasks: registered on import; flan-ul2r finds them through MIXTURE_OR_TASK_MODULE."""
import functools
import os

import seqio
import tensorflow as tf

from flan_ul2r.data.ul2.denoisers import UL2R
from flan_ul2r.data.ul2.preprocessors import ul2_denoise
from flan_ul2r.data.vocab.vocabularies import get_vocabulary

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = get_vocabulary("byte")


@seqio.map_over_dataset
def parse_tsv(line):
    fields = tf.strings.split(line, "\\t", maxsplit=1)
    return {"question": fields[0], "answer": fields[1]}


seqio.TaskRegistry.add(
    "my_prefix_lm",
    source=seqio.TextLineDataSource({"train": os.path.join(HERE, "qa.tsv"),
                                     "validation": os.path.join(HERE, "qa.tsv")}),
    preprocessors=[parse_tsv,
                   functools.partial(seqio.preprocessors.rekey,
                                     key_map={"inputs": "question", "targets": "answer"}),
                   seqio.preprocessors.tokenize,
                   seqio.preprocessors.append_eos_after_trim],
    output_features={"inputs": seqio.Feature(VOCAB), "targets": seqio.Feature(VOCAB)})

seqio.MixtureRegistry.add("my_mix", [("my_prefix_lm", 1.0), ("ul2r_s", 1.0)])
seqio.MixtureRegistry.add("my_mix_ul2r", [("my_prefix_lm", 1.0), ("ul2r", 1.0)])  # a sub-mixture

# UL2R on my own corpus: one task per denoiser, seqio's own tokenize, then the denoiser preprocessor.
for d in UL2R:
    seqio.TaskRegistry.add(
        f"my_ul2r_{d.name}",
        source=seqio.TextLineDataSource({"all": os.path.join(HERE, "corpus.txt")}),
        preprocessors=[seqio.map_over_dataset(lambda line: {"targets": line}),
                       seqio.preprocessors.tokenize,
                       functools.partial(ul2_denoise, denoisers=[d])],
        output_features={"inputs": seqio.Feature(VOCAB, add_eos=False),
                         "targets": seqio.Feature(VOCAB, add_eos=False)},
        shuffle_buffer_size=64)  # small corpus, short tests
seqio.MixtureRegistry.add("my_ul2r", [(f"my_ul2r_{d.name}", d.weight) for d in UL2R])

# Broken on purpose (bad-input tests).
seqio.TaskRegistry.add(
    "my_no_targets",
    source=seqio.TextLineDataSource({"train": os.path.join(HERE, "corpus.txt")}),
    preprocessors=[seqio.map_over_dataset(lambda line: {"text": line}), seqio.preprocessors.tokenize],
    output_features={"text": seqio.Feature(VOCAB)})
seqio.TaskRegistry.add(
    "my_other_vocab",
    source=seqio.TextLineDataSource({"train": os.path.join(HERE, "qa.tsv")}),
    preprocessors=[parse_tsv,
                   functools.partial(seqio.preprocessors.rekey,
                                     key_map={"inputs": "question", "targets": "answer"}),
                   seqio.preprocessors.tokenize],
    output_features={"inputs": seqio.Feature(seqio.ByteVocabulary()),
                     "targets": seqio.Feature(seqio.ByteVocabulary())})
seqio.MixtureRegistry.add("my_bad_mix", [("my_prefix_lm", 1.0), ("my_other_vocab", 1.0)])
'''


def write_user_module(folder: Path, name: str = "my_tasks") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.tsv").write_text("\n".join(qa_lines()) + "\n")
    (folder / "corpus.txt").write_text("\n".join(corpus_lines()) + "\n")
    (folder / f"{name}.py").write_text(MODULE)
    return folder / f"{name}.py"
