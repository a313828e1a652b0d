"""The Python API: load a model, tokenize, get logits, generate (KV cache), complete, score, infill.

    import flan_ul2r
    m = flan_ul2r.load_model("/models/Llama-3.2-1B")            # an HF safetensors directory
    m = flan_ul2r.load_model("/runs/u-llama/checkpoints/20000")  # or one of our checkpoints
    m.complete(["The capital of France is"], mode="s2s", max_new_tokens=8)   # [[text]]
    m.infill("The <extra_id_0> brown fox jumps over the <extra_id_1> dog.")  # ["quick", "lazy"]
    m.score([m.encode_prompt("2 + 2 =")], [m.tokenize(" 4")])               # [(log p, is greedy)]

`LoadedModel` (flan_ul2r/decoding/loaded_model.py, importable from here too) is a thin wrapper over
flan_ul2r/decoding/ (generation, scoring, infilling) holding the config, params, vocabulary, where it runs
(`with_mesh`) and what the checkpoint says about itself: `max_length` and `prefix_lm` (from
`train_info.json`, written by `flan-ul2r train`).
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

from flan_ul2r.decoding.loaded_model import DEFAULT_MAX_LENGTH, Completion, Infilled, LoadedModel
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.tf_devices import quiet_libtpu

quiet_libtpu()  # libtpu installed without TPU chips (the test extra): no init errors on the first device use

__all__ = ["DEFAULT_MAX_LENGTH", "Completion", "Infilled", "LoadedModel", "load_model"]


def _max_position_embeddings(hf_config: dict[str, Any] | None) -> int | None:
    value = (hf_config or {}).get("max_position_embeddings")
    return int(value) if value else None


def _checkpoint_vocabulary(path: Any) -> tuple[Any, str | None]:
    """(vocabulary, None) or (None, what is missing) for one of our checkpoints."""
    from flan_ul2r.checkpoint_io import read_json_beside
    from flan_ul2r.data.vocab.vocabularies import vocabulary_from_description

    desc = read_json_beside(path, "vocab")
    if desc is None:
        return None, f"{path}: no vocab.json beside the checkpoint or in its MODEL_DIR"
    tok = next((d for d in (path / "tokenizer", path.parent.parent / "tokenizer") if d.is_dir()), None)
    if tok is not None and desc.get("kind") == "sentencepiece":
        tok = tok / "tokenizer.model"
    try:
        return vocabulary_from_description(desc, str(tok) if tok else None), None
    except (FileNotFoundError, OSError, ValueError) as e:
        where = f"{path / 'tokenizer'} is missing and " if tok is None and desc.get("kind") != "byte" else ""
        return None, f"{path}: {where}the {desc.get('kind')} vocabulary could not be loaded ({e})"


def load_model(path: str | os.PathLike, dtype: str = "float32", mesh: Any = None,
               rules: Any = "data_parallel") -> LoadedModel:
    """An HF safetensors directory (config.json + *.safetensors) or a flan-ul2r checkpoint directory
    (params-only, or MODEL_DIR/checkpoints/<step>), local or remote (gs://...). `mesh` (e.g.
    `partitioning.make_mesh(data=1, fsdp=-1)`) with `rules` shards the params as training does; None =
    one device.

    `dtype` ("float32" or "bfloat16"): the weights' and the computation's.
    `max_length`: train_info.json's `sequence_length`, else the HF config's `max_position_embeddings`
    (config.json, or hf_config.json kept with an import), else DEFAULT_MAX_LENGTH. `prefix_lm`:
    train_info.json's `prefix_lm`, else False (causal, e.g. an HF import)."""
    from flan_ul2r import fs
    from flan_ul2r.checkpoint_io import read_json_beside, restore_params

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={dtype!r}: float32 or bfloat16")
    path = fs.absolute(path)
    if (path / "config.json").is_file():
        from flan_ul2r.convert.hf_import import attach_vocabulary, load_hf_params

        cfg, params, hf = load_hf_params(path, dtype)
        # as `convert import-hf` does: sentinels/mode tokens reuse reserved ids or grow the embedding
        cfg, vocab = attach_vocabulary(path, cfg, params)
        problem = None if vocab is not None else f"{path}: no tokenizer.json or tokenizer.model"
        model = LoadedModel(cfg.replace(dtype=dtype), jax.tree.map(jnp.asarray, params), vocab,
                            max_length=_max_position_embeddings(hf) or DEFAULT_MAX_LENGTH, path=str(path),
                            vocab_problem=problem)
    else:
        params, cfg_dict = restore_params(path)
        if cfg_dict is None:
            raise FileNotFoundError(f"{path}: neither an HF directory (config.json) nor a flan-ul2r "
                                    "checkpoint")
        info = read_json_beside(path, "train_info") or {}
        length = info.get("sequence_length") or _max_position_embeddings(read_json_beside(path, "hf_config"))
        vocab, problem = _checkpoint_vocabulary(path)
        if dtype != "float32":  # decoding reads the weights in `dtype` (bfloat16: half the memory traffic)
            params = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                                  params)
        cfg = ModelConfig.from_dict(cfg_dict).replace(dtype=dtype, param_dtype=dtype)
        model = LoadedModel(cfg, params, vocab, max_length=int(length or DEFAULT_MAX_LENGTH), path=str(path),
                            prefix_lm=bool(info.get("prefix_lm", False)), vocab_problem=problem)
    return model if mesh is None else model.with_mesh(mesh, rules)
