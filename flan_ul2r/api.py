"""A small Python API for notebooks: load a model, tokenize, get logits, generate.

    import flan_ul2r
    m = flan_ul2r.load_model("/models/Llama-3.2-1B")        # an HF safetensors directory
    m = flan_ul2r.load_model("/runs/u-llama/checkpoints/20000")  # or one of our checkpoints
    ids = m.tokenize("[S2S] The capital of France is")
    logits = m.logits([ids])                                  # [batch, length, vocab] float32
    print(m.detokenize(m.generate(ids, max_new_tokens=8)))

`generate` is greedy (temperature 0) or sampled, recomputing the full forward each step (no KV cache):
fine for notebooks and tests, not for serving.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Decoder


@dataclasses.dataclass
class LoadedModel:
    config: ModelConfig
    params: Any
    vocab: Any

    @functools.cached_property
    def _apply(self):
        model = Decoder(self.config)
        return jax.jit(lambda p, t, c: model.apply({"params": p}, t, causal_attention=c))

    def tokenize(self, text: str) -> list[int]:
        return [int(i) for i in self.vocab.encode(text)]

    def detokenize(self, ids) -> str:
        return self.vocab.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    def logits(self, token_ids, prefix_length: int | None = None) -> np.ndarray:
        """[batch, length] ids -> [batch, length, vocab] float32 logits. `prefix_length`: attend
        bidirectionally over the first `prefix_length` positions (prefix-LM, as UL2R trained)."""
        tokens = jnp.asarray(np.asarray(token_ids, np.int32))
        if tokens.ndim != 2:
            raise ValueError(f"token_ids must be [batch, length], got shape {tokens.shape}")
        flag = None
        if prefix_length:
            flag = (jnp.arange(tokens.shape[1])[None, :] < prefix_length).astype(jnp.int32)
            flag = jnp.broadcast_to(flag, tokens.shape)
        return np.asarray(self._apply(self.params, tokens, flag))

    def generate(self, prompt_ids, max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0,
                 stop_at_eos: bool = True) -> list[int]:
        """Continues one prompt; returns only the new ids."""
        ids = [int(i) for i in prompt_ids]
        rng = np.random.default_rng(seed)
        eos = getattr(self.vocab, "eos_id", None)
        new: list[int] = []
        for _ in range(max_new_tokens):
            last = self.logits([ids])[0, -1, : getattr(self.vocab, "vocab_size", self.config.vocab_size)]
            if temperature <= 0:
                token = int(np.argmax(last))
            else:
                p = np.exp((last - last.max()) / temperature)
                token = int(rng.choice(len(p), p=p / p.sum()))
            ids.append(token)
            new.append(token)
            if stop_at_eos and token == eos:
                break
        return new


def load_model(path: str | os.PathLike, dtype: str = "float32") -> LoadedModel:
    """An HF safetensors directory (config.json + *.safetensors) or a flan-ul2r checkpoint directory,
    local or remote (gs://...)."""
    from flan_ul2r import fs

    path = fs.absolute(path)
    if (path / "config.json").is_file():
        from flan_ul2r.convert.hf_import import attach_vocabulary, load_hf_params

        cfg, params, _ = load_hf_params(path, dtype)
        # as `convert import-hf` does: sentinels/mode tokens reuse reserved ids or grow the embedding
        cfg, vocab = attach_vocabulary(path, cfg, params)
        return LoadedModel(cfg.replace(dtype=dtype), jax.tree.map(jnp.asarray, params), vocab)
    from flan_ul2r.data.vocabularies import vocabulary_from_description
    from flan_ul2r.training.checkpoints import read_json_beside, restore_params

    params, cfg_dict = restore_params(path)
    if cfg_dict is None:
        raise FileNotFoundError(f"{path}: neither an HF directory (config.json) nor a flan-ul2r checkpoint")
    cfg = ModelConfig.from_dict(cfg_dict).replace(dtype=dtype)
    desc = read_json_beside(path, "vocab")
    vocab = None
    if desc is not None:
        tok = next((d for d in (path / "tokenizer", path.parent.parent / "tokenizer") if d.is_dir()), None)
        if tok is not None and desc.get("kind") == "sentencepiece":
            tok = tok / "tokenizer.model"
        vocab = vocabulary_from_description(desc, str(tok) if tok else None)
    return LoadedModel(cfg, params, vocab)
