"""Rematerialization policies of the decoder layers, by name (`ModelConfig.remat_policy`, gin:
`ModelSpec.remat_policy`): what each layer keeps from its forward pass for the backward pass; the rest is
recomputed (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"). From most memory to least:

| name | kept per layer | recomputed in the backward pass |
|---|---|---|
| `none` | everything autodiff keeps | nothing |
| `dots_saveable` | every matmul output, attention scores included | elementwise ops |
| `dots_with_no_batch_dims_saveable` | projection and MLP matmul outputs | attention, norms, activations |
| `save_attention` | q, k, v (after RoPE), attention output (+ splash's logsumexp) | out projection, MLP |
| `save_attention_proj` | q, k, v and the out projection's output | attention, MLP |
| `save_qkv_proj` | q, k, v | attention, out projection, MLP |
| `offload_dots_with_no_batch_dims` | as `dots_with_no_batch_dims_saveable`, in host memory | as that one |
| `offload_qkv_proj` | as `save_qkv_proj`, but in host memory | as that one |
| `full` | the layer's input only | the whole layer |

The names the policies select are set in models/decoder.py (`Attention`) with `checkpoint_name`; the
offloading ones move what they keep to pinned host memory and back (TPU and GPU; `check_offload` refuses
them on a backend without it). MaxText's `remat_policy` offers the same family (minimal, save_qkv_proj,
qkv_proj_offloaded, save_out_proj, full).
"""
from __future__ import annotations

from typing import Any

import jax

from flan_ul2r.models.config import OFFLOADING_POLICIES as OFFLOADING
from flan_ul2r.models.config import REMAT_POLICIES as POLICIES

QKV_NAMES = ("query_proj", "key_proj", "value_proj")
OUT_PROJ = "out_proj"
ATTENTION_OUT = "attention_out"  # also splash's residual name (models/attention_kernels.py)


def remat_policy(name: str) -> Any:
    """The `jax.checkpoint` policy for `name` (None = save nothing: `full`)."""
    cp = jax.checkpoint_policies
    policies = {
        "full": None,
        "dots_saveable": cp.dots_saveable,
        "dots_with_no_batch_dims_saveable": cp.dots_with_no_batch_dims_saveable,
        "save_attention": cp.save_only_these_names(*QKV_NAMES, ATTENTION_OUT),
        "save_attention_proj": cp.save_only_these_names(*QKV_NAMES, OUT_PROJ),
        "save_qkv_proj": cp.save_only_these_names(*QKV_NAMES),
        "offload_dots_with_no_batch_dims": cp.offload_dot_with_no_batch_dims("device", "pinned_host"),
        "offload_qkv_proj": cp.save_and_offload_only_these_names(
            names_which_can_be_saved=[], names_which_can_be_offloaded=list(QKV_NAMES),
            offload_src="device", offload_dst="pinned_host"),
    }
    if name not in policies:
        raise ValueError(f"ModelSpec.remat_policy={name!r}: use one of {POLICIES}")
    return policies[name]


def check_offload(name: str, platform: str) -> None:
    """Host offloading needs pinned host memory next to the accelerator: TPU or GPU."""
    if name in OFFLOADING and platform not in ("tpu", "gpu", "cuda"):
        others = tuple(p for p in POLICIES if p not in OFFLOADING)
        raise ValueError(f"ModelSpec.remat_policy={name!r} offloads to pinned host memory, which {platform} "
                         f"does not have; use one of {others}")
