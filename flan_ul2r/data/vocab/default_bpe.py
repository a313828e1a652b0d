"""A small BPE vocabulary trained here, with `tokenizers`, on the default corpus's training documents
(vocabulary spec `"bpe:SIZE"`, e.g. `"bpe:2048"`): what a from-scratch miniature uses instead of bytes,
so a token carries a word piece (about 4 bytes of English) as PaLM's SentencePiece tokens do, and UL2's
span lengths, counted in tokens (U-PaLM section 2.3: mean span 3), cover words as in the paper.

Byte-level BPE (GPT-2's byte alphabet, so any text encodes), digits split one per token (as Llama's and
PaLM's vocabularies split numbers; U-PaLM section 11.3 uses PaLM's), special tokens `<pad>` (0), `</s>`
(1), `<unk>` (2); sentinels and mode tokens are appended by `HfTokenizerVocabulary`. Held-out documents
(the corpus's validation split) are left out of the training text. The tokenizer.json is cached under the
user's cache directory, keyed by the corpus key and the size, and written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from flan_ul2r.data.corpus.default_corpus import default_corpus_documents, default_corpus_key
from flan_ul2r.data.corpus.token_cache import cache_dir

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
MIN_SIZE = 300  # the byte alphabet (256) + specials + some merges
_FORMAT = 1


def bpe_path(size: int) -> Path:
    """The cached tokenizer.json of a `size`-token BPE over the default corpus (trained when missing)."""
    if int(size) != size or size < MIN_SIZE:
        raise ValueError(f"vocabulary spec 'bpe:{size}': the size must be an integer >= {MIN_SIZE}")
    key = {**default_corpus_key(), "bpe_size": int(size), "bpe_format": _FORMAT}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "tokenizers" / f"bpe{int(size)}-{digest}" / "tokenizer.json"
    if not path.is_file():
        _train(int(size), path)
    return path


def training_documents() -> list[str]:
    return default_corpus_documents("train")


def _train(size: int, path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_documents(), trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="tokenizer.json.tmp-", dir=path.parent)
    os.close(fd)
    try:
        tok.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
