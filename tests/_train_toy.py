"""A small registered UL2R mixture over real prose (this repo's docs), for trainer tests."""
from __future__ import annotations

from pathlib import Path

from flan_ul2r.data.vocabularies import ByteVocabulary
from flan_ul2r.tasks.ul2r import ArrayCorpus, register_ul2r_mixture

TOY_MIXTURE = "toy_ul2r"
LENGTHS = {"inputs": 32, "targets": 32}


def register_toy_mixture() -> str:
    vocab = ByteVocabulary()
    root = Path(__file__).resolve().parent.parent
    text = " ".join(p.read_text() for p in sorted(root.glob("flan_ul2r/**/*.py")))
    docs = [vocab.encode(text[i:i + 3000]) for i in range(0, min(len(text), 120_000), 3000)]
    register_ul2r_mixture(TOY_MIXTURE, ArrayCorpus(docs), vocab)
    return TOY_MIXTURE
