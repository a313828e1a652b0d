"""A windowed layer's KV cache is a ring of `window` slots (Gemma 2/3 style local and global layers); that
cached decoding equals full recomputation with such layers: tests/test_decoding.py ("local_global")."""
import jax.numpy as jnp
import numpy as np

from flan_ul2r.models import preset
from flan_ul2r.models.kv_cache import prefill_cache

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
    mask = np.asarray(cache.key_mask(0, W))  # a new token at slot 10 sees slots 7, 8, 9 and itself
    held = 10 - (10 - np.arange(W)) % W
    assert sorted(held[mask[0]].tolist()) == [7, 8, 9, 10]
