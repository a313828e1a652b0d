"""Local attention (Gemma 2/3 style local and global layers): a windowed layer's KV cache is a ring of
`window` slots, and its attention FLOPs count the window's keys. That cached decoding equals full
recomputation with such layers: tests/test_decoding.py ("local_global")."""
import jax.numpy as jnp
import numpy as np

from flan_ul2r.models import preset
from flan_ul2r.models.kv_cache import prefill_cache
from flan_ul2r.training.compute import matmul_params, train_flops_per_token

W = 4
CFG = preset("tiny", num_layers=4, sliding_window=W, global_layers=(3,))  # layers 0-2 local, 3 global
STEPS = 12


def test_windowed_layers_keep_a_ring_of_window_slots():
    layers, batch, prompt, kv, hd = CFG.num_layers, 2, 10, CFG.num_kv_heads, CFG.head_dim
    shape = (layers, batch, prompt, kv, hd)
    k = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
    cache = prefill_cache(k, k, jnp.zeros(batch, jnp.int32), prompt + STEPS,
                          [CFG.layer_window(i) for i in range(layers)])
    assert [c.shape[2] for c in cache.k] == [W, W, W, prompt + STEPS]
    # the ring holds the last W prompt slots, slot s at s % W
    np.testing.assert_array_equal(np.asarray(cache.k[0][:, :, 6 % W]), np.asarray(k[0][:, 6]))
    np.testing.assert_array_equal(np.asarray(cache.k[0][:, :, 9 % W]), np.asarray(k[0][:, 9]))
    mask = np.asarray(cache.key_mask(W, layer=0))  # a new token at slot 10 sees slots 7, 8, 9 and itself
    held = 10 - (10 - np.arange(W)) % W
    assert sorted(held[mask[0]].tolist()) == [7, 8, 9, 10]


def test_attention_flops_count_the_window_on_local_layers():
    """PaLM's 12 * H * Dh * T per layer (appendix B), with min(window, T) keys on a windowed layer."""
    per_key = 12 * CFG.num_heads * CFG.head_dim
    assert train_flops_per_token(CFG, 64) == 6 * matmul_params(CFG) + per_key * (3 * W + 64)
    assert train_flops_per_token(CFG, 3) == 6 * matmul_params(CFG) + per_key * 4 * 3  # shorter than W
