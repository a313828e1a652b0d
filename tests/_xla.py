"""The XLA flags of every test process: N fake CPU devices for the sharding tests, and fast XLA:CPU
compiles.

Most of a test's time is XLA compiling tiny programs it runs a few times (a train step of a 32-wide model
compiles in seconds with XLA's defaults and runs in milliseconds). Two flags make those compiles cheap:
- `--xla_backend_optimization_level=0` skips LLVM's optimisation passes;
- `--xla_cpu_use_fusion_emitters=false` emits fused loops with XLA:CPU's classic IR emitters instead of
  its newer MLIR fusion emitters, which cost most of what was left of a compile.
The tiny preset's train step (batch 8 x 128, AdamW) compiles in 2.6 s with XLA's defaults, 1.6 s with the
first flag and 0.55 s with both, and runs as fast as with the first alone; the whole suite went from
13 min 15 s to 10 min 21 s on 2 cores. Every process of a test, in-process or a child, uses the same
flags, so results that a test compares bit for bit come from the same compiler settings. Training and
benchmarks outside the tests keep XLA's defaults.

The price of level 0 is slower code, which matters only where one program runs hundreds of times: the two
tests that train a model to a result in-process (300 steps each) build their train step inside
`optimised_train_steps()`, which compiles it at XLA's default level 2 (a per-program option, as
`flan_ul2r/training/xla_options.py` passes its own): their two files took 43.0 s of CPU instead of
71.8 s (`pytest -n 0`, XLA cache off, 2 cores).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"


def xla_flags(devices: int) -> str:
    """`XLA_FLAGS` for a test process with `devices` fake CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"


@contextlib.contextmanager
def optimised_train_steps() -> Iterator[None]:
    """Train steps a `Trainer` jits inside this block compile at XLA's default optimisation level (2), not
    the suite's 0 (module docstring); a trainer keeps them after the block."""
    from flan_ul2r.training import trainer

    suite_options = trainer.compiler_options
    trainer.compiler_options = lambda platform=None: {**suite_options(platform),
                                                      "xla_backend_optimization_level": 2}
    try:
        yield
    finally:
        trainer.compiler_options = suite_options
