"""HF safetensors directory -> flan-ul2r params checkpoint (what INITIAL_CHECKPOINT_PATH accepts).

The directory's tokenizer becomes the run's vocabulary (`hf:DIR` in flan_ul2r.data.vocab.vocabularies). UL2's
sentinels and mode tokens reuse reserved tokens when the vocabulary has them; otherwise they are appended
and the embedding (and an untied output layer) grows, each new row the mean of the existing rows - a
neutral start that keeps the new tokens' logits near the average (documented choice, as in HF's
`resize_token_embeddings(mean_resizing=True)`). Directories may be local or remote (flan_ul2r/fs.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from etils import epath

from flan_ul2r import fs
from flan_ul2r.convert import hf_families as fam
from flan_ul2r.convert import hf_tensors
from flan_ul2r.convert.safetensors_io import SafetensorsReader
from flan_ul2r.models.config import ModelConfig

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "generation_config.json")


def read_hf_config(hf_dir: fs.PathLike) -> dict[str, Any]:
    path = fs.path(hf_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{hf_dir}: no config.json")
    return fs.read_json(path)


def load_hf_params(hf_dir: fs.PathLike, dtype: str = "float32") -> tuple[ModelConfig, dict[str, Any], dict]:
    """(config, params tree, hf config) read tensor by tensor; stacked layers are filled in place."""
    hf_dir = fs.path(hf_dir)
    hf = read_hf_config(hf_dir)
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={dtype!r}: float32 or bfloat16")
    cfg = fam.config_from_hf(hf, dtype)
    with SafetensorsReader(hf_dir) as reader:
        return cfg, _read_params(cfg, reader, dtype, fam.family_of(hf)), hf


def _read_params(cfg: ModelConfig, reader: SafetensorsReader, dtype: str, family: str) -> dict[str, Any]:
    np_dtype = np.dtype("float32") if dtype == "float32" else _bf16()
    params: dict[str, Any] = {}

    def read(t: hf_tensors.Tensor, name: str) -> list[np.ndarray]:
        return hf_tensors.to_ours(t, reader.get(name, hf_tensors.hf_shape(t, cfg), np_dtype), cfg)

    for t in hf_tensors.tensors(cfg, family):
        if t.layer:
            values = [np.empty((cfg.num_layers,) + x.shape, np_dtype) for x in read(t, t.hf_name.format(i=0))]
            for i in range(cfg.num_layers):
                for stacked, x in zip(values, read(t, t.hf_name.format(i=i))):
                    stacked[i] = x
        else:
            values = read(t, t.hf_name)
        for path, value in zip(t.paths, values):
            node = params
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    return params


def _bf16():
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def grow_vocabulary(cfg: ModelConfig, params: dict[str, Any], vocab_size: int) -> ModelConfig:
    """Adds rows (mean of the existing rows) so the embedding covers `vocab_size` ids."""
    extra = vocab_size - cfg.vocab_size
    if extra <= 0:
        return cfg
    emb = params["embedding"]
    new_rows = np.repeat(emb.astype(np.float32).mean(0, keepdims=True), extra, 0)
    params["embedding"] = np.concatenate([emb, new_rows]).astype(emb.dtype)
    if "lm_head" in params:
        k = params["lm_head"]["kernel"]
        params["lm_head"]["kernel"] = np.concatenate(
            [k, np.repeat(k.astype(np.float32).mean(1, keepdims=True), extra, 1)], axis=1).astype(k.dtype)
    return cfg.replace(vocab_size=vocab_size)


def attach_vocabulary(hf_dir: fs.PathLike, cfg: ModelConfig, params: dict[str, Any],
                      sentinel_policy: str = "auto") -> tuple[ModelConfig, Any]:
    """(config grown for appended sentinel/mode ids, vocabulary) - or (cfg, None) without a tokenizer.

    tokenizer.json -> `hf:DIR` vocabulary, else tokenizer.model -> `sentencepiece:` vocabulary.

    The tokenizer must fit the embedding: ids beyond config.json's vocab_size are an error naming both.
    """
    from flan_ul2r.data.vocab.vocabularies import get_vocabulary

    hf_dir = fs.path(hf_dir)
    if (hf_dir / "tokenizer.json").is_file():
        vocab = get_vocabulary(f"hf:{hf_dir}?sentinel_policy={sentinel_policy}")
    elif (hf_dir / "tokenizer.model").is_file():  # SentencePiece-only directories (older Llama/Gemma)
        model_file = hf_dir / "tokenizer.model"
        vocab = get_vocabulary(f"sentencepiece:{model_file}?sentinel_policy={sentinel_policy}")
    else:
        return cfg, None
    base = int(vocab.describe()["base_vocab_size"])
    if base > cfg.vocab_size:
        raise ValueError(f"{hf_dir}: the tokenizer has {base} ids but config.json vocab_size="
                         f"{cfg.vocab_size} (model.embed_tokens.weight has {cfg.vocab_size} rows): tokenizer "
                         "and weights do not belong together")
    return grow_vocabulary(cfg, params, int(vocab.vocab_size)), vocab


def import_hf(hf_dir: fs.PathLike, out: fs.PathLike, dtype: str = "float32", sentinel_policy: str = "auto",
              ) -> tuple[ModelConfig, dict[str, Any]]:
    """Converts and writes the params checkpoint; returns (config, vocabulary description)."""
    from flan_ul2r.checkpoint_io import save_params

    hf_dir, out = fs.path(hf_dir), fs.absolute(out)
    cfg, params, hf = load_hf_params(hf_dir, dtype)
    tokenizer_files = [f for f in TOKENIZER_FILES if (hf_dir / f).is_file()]
    vocab_desc = None
    cfg, vocab = attach_vocabulary(hf_dir, cfg, params, sentinel_policy)
    if vocab is not None:
        vocab_desc = vocab.describe()
    # `dtype` is how the arrays are stored (and the compute dtype); master weights stay float32: a run
    # started from this checkpoint restores them as float32 (orbax casts on restore).
    cfg = cfg.replace(dtype=dtype, param_dtype="float32")
    extra = {"hf_config": hf}
    if vocab_desc is not None:
        extra["vocab"] = vocab_desc
    save_params(out, params, cfg.to_dict(), extra)
    _copy_tokenizer(hf_dir, out / "tokenizer", tokenizer_files)
    return cfg, vocab_desc or {}


def _copy_tokenizer(hf_dir: epath.Path, folder: epath.Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        fs.copy_file(hf_dir / name, folder / name)
