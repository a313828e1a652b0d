"""The one rule that holds documents out for validation, for cached and streamed corpora alike.

A document is held out iff crc32 of its name - the file's base name and the document's position in it,
as the readers write provenance ("part-0.jsonl:12", "shard.tfrecord:record 7") - is 0 mod 100: a
deterministic ~1% of documents (the same idea as T5's C4 validation split, a fixed slice by document).
The directory is left out, so the split is the same wherever the files are mounted (a local copy or
`gs://`), and the rule needs nothing but the document itself, so a stream decides it as it reads and the
token cache stores it per document (`token_cache.py`): switching `ul2r_corpus.cache` never moves a
document between train and validation. Documents that come without a file (token arrays, plain text
lists) are named by their ordinal (`ordinal_mask`). The split is by document, so no validation text is
trained on.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Iterable

import numpy as np

VALIDATION_MODULUS = 100  # 1 document in 100 is held out: a ~1% validation split
SPLITS = ("train", "validation", "all")


def is_held_out(provenance: str) -> bool:
    """Whether the document at `provenance` ("path/name:position") belongs to the validation split."""
    return zlib.crc32(os.path.basename(provenance).encode()) % VALIDATION_MODULUS == 0


def in_split(provenance: str, split: str) -> bool:
    """Whether the document at `provenance` belongs to `split` ("train", "validation" or "all")."""
    if split not in SPLITS:
        raise ValueError(f"corpus split {split!r}: expected one of {SPLITS}")
    return True if split == "all" else is_held_out(provenance) == (split == "validation")


def held_out_mask(provenances: Iterable[str]) -> np.ndarray:
    """bool[n]: `is_held_out` of each provenance."""
    return np.array([is_held_out(p) for p in provenances], dtype=bool)


def ordinal_name(index: int) -> str:
    """The name of document `index` (0-based) of a collection without files: "document:1", ..."""
    return f"document:{index + 1}"


def ordinal_mask(num_documents: int) -> np.ndarray:
    """bool[n]: `is_held_out` of documents without a file, named by their ordinal (`ordinal_name`)."""
    return held_out_mask(ordinal_name(i) for i in range(num_documents))
