"""The XLA flags of every test process: N fake CPU devices for the sharding tests, and XLA:CPU's backend
(LLVM) optimisation level 0.

Most of a test's time is XLA compiling tiny programs it runs a few times (a train step of a 32-wide model
compiles in about 0.9 s and runs in milliseconds). Level 0 skips LLVM's optimisation passes: the same HLO,
the same float32 arithmetic, compiled about a third faster (tests/test_decoding.py, test_model.py,
test_attention.py, test_prefix_cache.py and test_remat.py: 164 s -> 117 s on 2 cores). Every process of a
test, in-process or a child, uses the same flags, so results that a test compares bit for bit come from the
same compiler settings. Training and benchmarks outside the tests keep XLA's defaults.
"""
from __future__ import annotations

FAST_COMPILE = "--xla_backend_optimization_level=0"


def xla_flags(devices: int) -> str:
    """`XLA_FLAGS` for a test process with `devices` fake CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"
