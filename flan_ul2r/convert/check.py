"""Logit check: the same random batch through HF transformers and through our model."""
from __future__ import annotations

import os
import tempfile

import numpy as np

from flan_ul2r import fs


def _load_hf(hf_dir: fs.PathLike):
    """transformers reads local directories only: a remote one is copied to a temporary directory."""
    import torch
    from transformers import AutoModelForCausalLM

    if not fs.is_remote(hf_dir):
        return AutoModelForCausalLM.from_pretrained(os.fspath(hf_dir), dtype=torch.float32,
                                                    attn_implementation="eager")
    with tempfile.TemporaryDirectory() as local:
        fs.copy_tree(hf_dir, local)
        return AutoModelForCausalLM.from_pretrained(local, dtype=torch.float32, attn_implementation="eager")


def compare_logits(hf_dir: fs.PathLike, cfg, params, batch: int = 2, length: int = 16, seed: int = 0
                   ) -> dict[str, float]:
    """max |delta logit| and mean KL(HF || ours) over the HF vocabulary, in float32."""
    import jax.numpy as jnp
    import torch

    from flan_ul2r.models.decoder import Decoder

    hf_model = _load_hf(hf_dir)
    hf_model.eval()
    vocab = hf_model.config.vocab_size
    tokens = np.random.default_rng(seed).integers(0, vocab, size=(batch, length))
    with torch.no_grad():
        ref = hf_model(torch.as_tensor(tokens)).logits.float().numpy()
    ours = np.asarray(Decoder(cfg.replace(dtype="float32")).apply(
        {"params": params}, jnp.asarray(tokens, jnp.int32)))[..., :vocab]
    log_p = ref - np.logaddexp.reduce(ref, axis=-1, keepdims=True)
    log_q = ours - np.logaddexp.reduce(ours, axis=-1, keepdims=True)
    kl = float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))
    return {"max_abs_logit_delta": float(np.max(np.abs(ref - ours))), "mean_kl": kl}
