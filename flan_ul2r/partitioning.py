"""Device mesh (data, fsdp, tensor), logical-axis rules, and the shardings the train step is jitted with.

t5x style: layers name their parameter axes (`embed`, `mlp`, `heads`, ...) and activation axes
(`act_batch`, `act_embed`, ...); a rule set maps those names to mesh axes. Three presets:
`data_parallel` (parameters replicated), `fsdp` (parameters and optimizer state sharded over `fsdp` on
their `embed` axis, ZeRO-3 style; t5x's 2-D parameter partitioning) and `fsdp_tensor` (plus Megatron-style
tensor parallelism of heads / mlp / vocab over `tensor`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.experimental.mesh_utils
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
Rules = tuple[tuple[str, Any], ...]

_BATCH = ("act_batch", ("data", "fsdp"))
RULE_PRESETS: dict[str, Rules] = {
    "data_parallel": (_BATCH,),
    "fsdp": (_BATCH, ("embed", "fsdp")),
    "fsdp_tensor": (_BATCH, ("embed", "fsdp"), ("heads", "tensor"), ("kv_heads", "tensor"),
                    ("mlp", "tensor"), ("vocab", "tensor"), ("act_heads", "tensor"), ("act_mlp", "tensor"),
                    ("act_kv_heads", "tensor"),  # the KV cache of decoding (models/kv_cache.py)
                    ("act_vocab", "tensor")),
}


def rules_for(preset_or_rules: str | Sequence[Sequence[Any]]) -> Rules:
    if isinstance(preset_or_rules, str):
        if preset_or_rules not in RULE_PRESETS:
            raise ValueError(f"logical axis rules {preset_or_rules!r}: known presets {sorted(RULE_PRESETS)}")
        return RULE_PRESETS[preset_or_rules]
    return tuple((str(a), b if b is None or isinstance(b, str) else tuple(b)) for a, b in preset_or_rules)


def mesh_shape(sizes: dict[str, int], num_devices: int) -> tuple[int, ...]:
    """Resolves -1 (fill) and checks that the sizes multiply to the device count, naming the bad axis."""
    unknown = set(sizes) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"mesh axes {sorted(unknown)} unknown; axes are {MESH_AXES}")
    shape = {a: int(sizes.get(a, 1)) for a in MESH_AXES}
    fill = [a for a, s in shape.items() if s == -1]
    if len(fill) > 1:
        raise ValueError(f"mesh: only one axis may be -1 (fill), got {fill}")
    for a, s in shape.items():
        if s == 0 or s < -1:
            raise ValueError(f"mesh axis {a!r}: size {s} must be positive or -1")
    fixed = int(np.prod([s for s in shape.values() if s != -1]))
    for a, s in shape.items():
        if s != -1 and num_devices % s:
            raise ValueError(f"mesh axis {a!r}: size {s} does not divide the {num_devices} devices")
    if num_devices % fixed:
        raise ValueError(f"mesh sizes {shape}: product {fixed} does not divide the {num_devices} devices")
    if fill:
        shape[fill[0]] = num_devices // fixed
    elif fixed != num_devices:
        raise ValueError(f"mesh sizes {shape} use {fixed} devices but {num_devices} are present; "
                         "set one axis to -1 to fill")
    return tuple(shape[a] for a in MESH_AXES)


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape({"data": data, "fsdp": fsdp, "tensor": tensor}, len(devices))
    try:
        arr = jax.experimental.mesh_utils.create_device_mesh(shape, devices)
    except (ValueError, AssertionError, NotImplementedError):
        arr = np.asarray(devices).reshape(shape)
    return Mesh(arr, MESH_AXES)


def logical_shardings(boxed_tree: Any, mesh: Mesh, rules: Rules) -> Any:
    """NamedShardings for a tree whose leaves may be flax `LogicallyPartitioned` boxes (others replicate)."""
    specs = nn.get_partition_spec(boxed_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_shards(mesh: Mesh) -> int:
    """How many devices split the batch: the product of the `data` and `fsdp` axes."""
    return int(mesh.shape["data"]) * int(mesh.shape["fsdp"])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Host-local numpy batch -> global jax.Arrays over (data, fsdp); the same code for 1 or N hosts."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}
