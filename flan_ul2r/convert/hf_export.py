"""flan-ul2r checkpoint -> HF safetensors directory that `AutoModelForCausalLM.from_pretrained` loads.

HF transformers has no prefix-LM attention for these architectures: the exported model attends causally
everywhere. A UL2R-trained model still works that way (mode tokens and infilling prompts are causal
prompts), but inputs no longer see ahead; `export_hf` says so when the run trained with a prefix.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from flan_ul2r.checkpoints import read_json_beside, restore_params
from flan_ul2r.convert import hf_families as fam
from flan_ul2r.convert.safetensors_io import write_sharded
from flan_ul2r.models.config import ModelConfig


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> np.ndarray:
    for key in path:
        tree = tree[key]
    return np.asarray(tree)


def hf_tensors(cfg: ModelConfig, params: dict[str, Any]):
    """(HF name, array) for every tensor, layer by layer."""
    for t in fam.tensors(cfg):
        value = _get(params, t.path)
        if t.layer:
            for i in range(cfg.num_layers):
                yield t.hf_name.format(i=i), fam.to_hf(t, value[i], cfg)
        else:
            yield t.hf_name, fam.to_hf(t, value, cfg)


def _trained_with_prefix(checkpoint: Path) -> bool:
    gin = checkpoint.parent.parent / "config.gin"
    if not gin.is_file():
        return False
    text = gin.read_text()
    return "MIXTURE_OR_TASK_NAME = 'lm'" not in text


def _tokenizer_dir(checkpoint: Path) -> Path | None:
    for folder in (checkpoint / "tokenizer", checkpoint.parent.parent / "tokenizer"):
        if folder.is_dir():
            return folder
    return None


def export_hf(checkpoint: str | Path, out: str | Path, max_shard_bytes: int = 2 << 30) -> list[str]:
    """Writes config.json, safetensors shards, tokenizer files; returns notes for the user."""
    checkpoint, out = Path(checkpoint).absolute(), Path(out)
    params, cfg_dict = restore_params(checkpoint)
    if cfg_dict is None:
        raise FileNotFoundError(f"{checkpoint}: no model_config.json next to the checkpoint")
    cfg = ModelConfig.from_dict(cfg_dict)
    params = jax.tree.map(np.asarray, params)
    hf_base = read_json_beside(checkpoint, "hf_config") or {"architectures": ["LlamaForCausalLM"],
                                                             "model_type": "llama"}
    notes = []
    if hf_base.get("model_type") not in ("llama", "mistral", "qwen2", "gemma"):
        model_type = hf_base.get("model_type")
        raise ValueError(f"{checkpoint}: hf_config model_type {model_type!r} is not exportable")
    if cfg.parallel_block:
        raise ValueError(f"{checkpoint}: PaLM-style parallel blocks have no HF architecture among "
                         f"{list(fam.ARCHITECTURES)}")
    write_sharded(out, hf_tensors(cfg, params), max_shard_bytes)
    hf = fam.hf_config_from(cfg, hf_base)
    (out / "config.json").write_text(json.dumps(hf, indent=1))
    tok = _tokenizer_dir(checkpoint)
    if tok is not None:
        for f in tok.iterdir():
            shutil.copy(f, out / f.name)
    vocab = read_json_beside(checkpoint, "vocab")
    if vocab is not None:
        (out / "flan_ul2r_vocab.json").write_text(json.dumps(vocab, indent=1))
        if vocab.get("appended_ids"):
            notes.append(f"{len(vocab['appended_ids'])} sentinel/mode-token ids were appended to the "
                         "vocabulary; their mapping is in flan_ul2r_vocab.json")
    if _trained_with_prefix(checkpoint):
        notes.append("trained with prefix-LM attention: HF transformers runs it causally (inputs no longer "
                     "see ahead); quality on prefix-style prompts may differ")
    return notes
