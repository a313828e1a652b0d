"""Remat policies (models/remat.py): each keeps exactly the named activations it promises, none changes the
gradients, and host offloading is refused where there is no host memory to offload to."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r import partitioning
from flan_ul2r.models import Decoder, preset
from flan_ul2r.models.attention_kernels import AttentionMask
from flan_ul2r.models.config import REMAT_POLICIES
from flan_ul2r.models.decoder import Block, attention_mask
from flan_ul2r.models.remat import remat_policy
from flan_ul2r.models.rope import layer_inputs
from flan_ul2r.training import optim
from flan_ul2r.training.trainer import Trainer

NAMES = {"query_proj", "key_proj", "value_proj", "attention_out", "out_proj"}


@pytest.mark.slow
@pytest.mark.parametrize("policy,kept", [
    ("full", set()),
    ("save_qkv_proj", {"query_proj", "key_proj", "value_proj"}),
    ("save_attention_proj", {"query_proj", "key_proj", "value_proj", "out_proj"}),
    ("save_attention", {"query_proj", "key_proj", "value_proj", "attention_out"}),
])
def test_policy_keeps_the_named_activations(policy, kept, capsys):
    cfg = preset("tiny", attention_impl="xla")
    x, pos = jnp.ones((1, 16, 64)), jnp.arange(16)[None]
    seg = jnp.ones((1, 16), jnp.int32)
    mask = AttentionMask(seg, None, attention_mask(seg, None))
    layer = jax.tree.map(lambda a: a[0], layer_inputs(cfg, pos))  # layer 0's RoPE tables and window flag
    block = nn.remat(Block, policy=remat_policy(policy))(cfg)
    params = block.init(jax.random.PRNGKey(0), x, pos, mask, layer)
    jax.ad_checkpoint.print_saved_residuals(lambda p, x: block.apply(p, x, pos, mask, layer)[0].sum(), params,
                                            x)
    saved = set(re.findall(r"named '(\w+)'", capsys.readouterr().out))
    assert saved & NAMES == kept


@pytest.mark.slow
def test_policies_do_not_change_the_gradients():
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(3, 100, size=(2, 16)), jnp.int32)
    # the named ones (full: tests/test_model.py; jax's dots_* are its own; offloading needs host memory)
    policies = ["none", "save_attention", "save_attention_proj", "save_qkv_proj"]
    assert set(policies) <= set(REMAT_POLICIES)
    grads = {}
    for policy in policies:
        cfg = preset("tiny", vocab_size=101, remat_policy=policy, attention_impl="xla", scan_layers=True)
        params = nn.meta.unbox(Decoder(cfg).init(jax.random.PRNGKey(0), tokens)["params"])
        loss = lambda p, c=cfg: jnp.sum(Decoder(c).apply({"params": p}, tokens) ** 2)  # noqa: E731
        grads[policy] = jax.grad(loss)(params)
    for policy in policies[1:]:
        for g, w in zip(jax.tree.leaves(grads[policy]), jax.tree.leaves(grads["none"])):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5, err_msg=policy)


def test_offloading_is_refused_on_cpu_naming_the_setting():
    mesh = partitioning.make_mesh(data=-1, devices=jax.devices()[:1])
    tx = optim.optimizer("adamw", optim.schedule("constant", 1e-3))
    with pytest.raises(ValueError, match=r"ModelSpec.remat_policy='offload_qkv_proj' offloads to pinned host "
                                         r"memory, which cpu does not have; use one of \('none', 'full'"):
        Trainer(preset("tiny", remat_policy="offload_qkv_proj"), tx, mesh, partitioning.rules_for("fsdp"))
    with pytest.raises(ValueError, match="ModelSpec.remat_policy='most': use one of"):
        remat_policy("most")
