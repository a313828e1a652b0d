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
"""
from __future__ import annotations

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"


def xla_flags(devices: int) -> str:
    """`XLA_FLAGS` for a test process with `devices` fake CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"
