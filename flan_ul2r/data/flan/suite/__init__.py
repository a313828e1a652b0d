"""The embedded instruction suite: generated tasks with verifiable answers, shaped like Flan's benchmarks."""
