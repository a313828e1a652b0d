"""Vocabularies: byte, SentencePiece and HF `tokenizer.json` kinds with sentinels and UL2 mode tokens, the
default vocabulary the built-in tasks tokenize with, and the small BPE trained on the default corpus."""
