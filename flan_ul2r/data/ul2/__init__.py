"""UL2 / UL2R: noise masks, denoisers as data, seqio preprocessors, chunking, the built-in corpus tasks."""
