"""Flan instruction data: templates, FLAN v2's formatting pools and mixing, the vectorized renderer,
instruction tasks, readers for the real export formats, evaluation prompts, and the held-out rule."""
