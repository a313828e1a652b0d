"""Text corpora: source specs and their readers, the tokenized on-disk cache, the embedded default corpus,
per-host document streams, and the one rule that holds documents out for validation."""
