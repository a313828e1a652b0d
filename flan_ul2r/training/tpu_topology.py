"""Cloud TPU slices by name, and their devices for ahead-of-time compiles on a machine without TPUs.

Names: libtpu's topology form `GEN:AxBxC` (v4, v5p: 3-D tori) or `GEN:AxB` (v5e, v6e: 2-D), e.g.
`v5p:4x4x2`; or a Cloud TPU slice name `GEN-N`, e.g. `v5p-64`, `v5e-256`, `v6e-256`, `v4-32`. In slice
names v4 and v5p count TensorCores (2 per chip: v5p-64 is 32 chips), v5e and v6e count chips (Cloud TPU
docs, "TPU versions"); `v5litepod-N` is v5e's. A slice name maps to the standard topology of that size (the
shapes MaxText's `accelerator_to_spec_map.py` uses: 2x2x1, 2x2x2, 2x2x4, 2x4x4, 4x4x4, 4x4x8, 4x8x8, ...);
give other shapes in the `GEN:AxBxC` form.

`topology_devices` asks libtpu (the `tpu-compile` extra) for the slice's devices: one per chip, except on
v4, which libtpu 0.0.42 describes per TensorCore (2 devices per chip, no megacore); figures are then per
TensorCore, against half a chip's HBM and peak. Without local TPU chips it first sets the environment
libtpu needs there (`flan_ul2r.tf_devices.quiet_libtpu`).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from typing import Any

from flan_ul2r.tf_devices import quiet_libtpu

# Per chip: HBM in GiB and dense bf16 peak TFLOP/s (Cloud TPU docs; the peaks as in training/compute.py).
CHIPS: dict[str, tuple[float, float]] = {"v4": (32.0, 275.0), "v5e": (16.0, 197.0), "v5p": (95.0, 459.0),
                                         "v6e": (32.0, 918.0)}
_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6lite": "v6e"}
_DIMS = {"v4": 3, "v5p": 3, "v5e": 2, "v6e": 2}
_CORES_PER_CHIP_IN_NAME = {"v4": 2, "v5p": 2, "v5e": 1, "v6e": 1}
# Standard slice shapes by chip count (powers of two).
_SHAPES_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4), 64: (4, 4, 4), 128: (4, 4, 8),
              256: (4, 8, 8), 512: (8, 8, 8), 1024: (8, 8, 16), 2048: (8, 16, 16), 4096: (16, 16, 16)}
_SHAPES_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16),
              256: (16, 16)}
_FORMS = ("GEN:AxBxC for v4/v5p (e.g. v5p:4x4x2), GEN:AxB for v5e/v6e (e.g. v6e:16x16), or a slice name "
          "GEN-N (e.g. v5p-64, v5e-256, v6e-256, v4-32)")


@dataclasses.dataclass(frozen=True)
class TpuSlice:
    """A slice: what the user wrote, the generation, libtpu's topology name, chips and per-chip specs."""

    name: str
    generation: str
    topology: str
    chips: int
    hbm_gib: float
    peak_tflops: float

    def describe(self) -> str:
        chips = f"{self.chips} chip{'s' if self.chips != 1 else ''}"
        return (f"{self.topology} ({chips} of TPU {self.generation}, {self.hbm_gib:g} GiB HBM and "
                f"{self.peak_tflops:g} bf16 TFLOP/s each)")


def _generation(word: str, name: str) -> str:
    gen = _ALIASES.get(word.lower(), word.lower())
    if gen not in CHIPS:
        raise ValueError(f"TOPOLOGY={name!r}: unknown TPU generation {word!r}; known: {sorted(CHIPS)} "
                         f"(use {_FORMS})")
    return gen


def _make(name: str, gen: str, dims: tuple[int, ...]) -> TpuSlice:
    hbm, peak = CHIPS[gen]
    return TpuSlice(name, gen, f"{gen}:{'x'.join(map(str, dims))}", math.prod(dims), hbm, peak)


def parse_slice(name: str) -> TpuSlice:
    """A topology or slice name -> TpuSlice; anything else is a ValueError naming the value."""
    text = name.strip()
    explicit = re.fullmatch(r"([A-Za-z0-9]+):(\d+(?:x\d+)*)", text)
    if explicit:
        gen = _generation(explicit.group(1), name)
        dims = tuple(int(d) for d in explicit.group(2).split("x"))
        if len(dims) != _DIMS[gen] or min(dims) < 1:
            form = "AxBxC" if _DIMS[gen] == 3 else "AxB"
            raise ValueError(f"TOPOLOGY={name!r}: TPU {gen} slices are {_DIMS[gen]}-D ({form} chips), got "
                             f"{len(dims)} numbers {dims}")
        return _make(name, gen, dims)
    sliced = re.fullmatch(r"([A-Za-z0-9]+)-(\d+)", text)
    if not sliced:
        raise ValueError(f"TOPOLOGY={name!r} is not a TPU topology name: use {_FORMS}")
    gen = _generation(sliced.group(1), name)
    count, per_chip = int(sliced.group(2)), _CORES_PER_CHIP_IN_NAME[gen]
    shapes = _SHAPES_3D if _DIMS[gen] == 3 else _SHAPES_2D
    chips = count // per_chip
    if count % per_chip or chips not in shapes:
        unit = "TensorCores (2 per chip)" if per_chip == 2 else "chips"
        raise ValueError(f"TOPOLOGY={name!r}: {gen} slice names count {unit}; {count} is not a standard "
                         f"{gen} slice (chips: {sorted(shapes)}); give the shape as {gen}:"
                         f"{'AxBxC' if _DIMS[gen] == 3 else 'AxB'}")
    return _make(name, gen, shapes[chips])


def topology_devices(tpu: TpuSlice) -> list[Any]:
    """The slice's devices (abstract: for lowering and compiling, not for running)."""
    if importlib.util.find_spec("libtpu") is None:
        raise ValueError(f"TOPOLOGY={tpu.name!r}: compiling for a TPU slice needs libtpu; install it with "
                         "`pip install -e .[tpu-compile]`")
    quiet_libtpu(f"{tpu.generation}-{tpu.chips * _CORES_PER_CHIP_IN_NAME[tpu.generation]}")
    from jax.experimental import topologies

    dims = tuple(int(d) for d in tpu.topology.split(":")[1].split("x"))
    kwargs: dict[str, Any] = {}
    # libtpu's default host is 2x2x1 chips; a slice of fewer chips, or a v5e/v6e-8 (one 8-chip host), is
    # one host of its own shape (Cloud TPU docs: v5litepod-8 and v6e-8 are single-host slices).
    if tpu.chips < 4 or (tpu.chips == 8 and _DIMS[tpu.generation] == 2):
        kwargs["chips_per_host_bounds"] = (dims + (1, 1))[:3]
    try:
        desc = topologies.get_topology_desc(platform="tpu", topology_name=tpu.topology, **kwargs)
    except Exception as e:  # libtpu's JaxRuntimeError: say which name it came from
        raise ValueError(f"TOPOLOGY={tpu.name!r}: libtpu cannot describe {tpu.topology}: {e}") from e
    devices = list(desc.devices)
    if len(devices) not in (tpu.chips, 2 * tpu.chips):
        raise RuntimeError(f"TOPOLOGY={tpu.name!r}: libtpu describes {len(devices)} devices for "
                           f"{tpu.topology}, expected {tpu.chips} chips")
    return devices
