"""A small registered UL2R mixture over real prose (this repo's docs), for trainer tests."""
from __future__ import annotations

import argparse
import collections
import inspect
import json
import textwrap
import unittest

from flan_ul2r.data.ul2.cached_tasks import array_corpus, register_lm_task, register_ul2r_mixture
from flan_ul2r.data.vocab.vocabularies import ByteVocabulary

TOY_MIXTURE = "toy_ul2r"
TOY_LM = "toy_lm"  # causal: targets only, no prefix
LENGTHS = {"inputs": 32, "targets": 32}


def _toy_docs(vocab: ByteVocabulary) -> list:
    # Stable prose (not this repository's files, which change while one edits): stdlib documentation.
    modules = (argparse, collections, json, textwrap, unittest)
    objects = [m for m in modules] + [f for m in modules for _, f in sorted(vars(m).items()) if callable(f)]
    text = " ".join(inspect.getdoc(o) or "" for o in objects)
    return [vocab.encode(text[i:i + 3000]) for i in range(0, min(len(text), 120_000), 3000)]


def register_toy_mixture() -> str:
    vocab = ByteVocabulary()
    register_ul2r_mixture(TOY_MIXTURE, array_corpus(_toy_docs(vocab)), vocab)
    return TOY_MIXTURE


def register_toy_lm() -> str:
    """A causal-LM toy task over the same prose (its batches have no bidirectional prefix)."""
    import seqio

    if TOY_LM not in seqio.TaskRegistry.names():
        vocab = ByteVocabulary()
        register_lm_task(TOY_LM, array_corpus(_toy_docs(vocab)), vocab)
    return TOY_LM


def train_tiny(model_dir, name: str, steps: int, **kw):
    """A tiny model (d_model 32) trained on 8 fake devices (FSDP), AdamW with cosine decay, a checkpoint
    every 3 steps: the setting of the killed-and-resumed tests. `kw`: more RunConfig fields."""
    from flan_ul2r.models.config import preset
    from flan_ul2r.training.config import CheckpointConfig, MeshConfig, ModelSpec, OptimizerConfig, RunConfig
    from flan_ul2r.training.run import run

    shape = preset("tiny", vocab_size=362, d_model=32, d_ff=64, head_dim=8)
    return run(RunConfig(
        model_dir=str(model_dir), mixture_or_task_name=name, task_feature_lengths=LENGTHS, train_steps=steps,
        batch_size=8, model=ModelSpec(shape=shape), mesh=MeshConfig(data=1, fsdp=-1, rules="fsdp"),
        optimizer=OptimizerConfig(name="adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=2,
                                  final_learning_rate=1e-5),
        checkpoint=CheckpointConfig(period=3), progress=True, **kw), operative_config="# test run\n")
