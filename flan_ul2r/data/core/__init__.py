"""What every task shares: seqio's registry, seekable tasks (example i is a pure function of seed and i),
per-task example streams, the resumable training loader and the prefix-LM feature converter."""
