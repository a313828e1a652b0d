"""flan-ul2r checkpoint -> HF safetensors directory that `AutoModelForCausalLM.from_pretrained` loads.

HF transformers has no prefix-LM attention for these architectures: the exported model attends causally
everywhere. A UL2R-trained model still works that way (mode tokens and infilling prompts are causal
prompts), but inputs no longer see ahead; `export_hf` says so when the run trained with a prefix.
Checkpoints and output directories may be local or remote (flan_ul2r/fs.py).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from etils import epath

from flan_ul2r import fs
from flan_ul2r.checkpoint_io import read_json_beside, restore_params
from flan_ul2r.convert import hf_families as fam
from flan_ul2r.convert import hf_tensors as tensor_map
from flan_ul2r.convert.hf_tokenizer import write_tokenizer
from flan_ul2r.convert.output_dir import write_staged
from flan_ul2r.convert.safetensors_io import write_sharded
from flan_ul2r.models.config import ModelConfig


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> np.ndarray:
    for key in path:
        tree = tree[key]
    return np.asarray(tree)


def hf_tensors(cfg: ModelConfig, params: dict[str, Any], family: str = "llama"):
    """(HF name, array) for every tensor of the family, layer by layer."""
    for t in tensor_map.tensors(cfg, family):
        values = [_get(params, path) for path in t.paths]
        if t.layer:
            for i in range(cfg.num_layers):
                yield t.hf_name.format(i=i), tensor_map.to_hf(t, [x[i] for x in values], cfg)
        else:
            yield t.hf_name, tensor_map.to_hf(t, values, cfg)


def _trained_with_prefix(checkpoint: epath.Path) -> bool:
    gin = checkpoint.parent.parent / "config.gin"
    if not gin.is_file():
        return False
    text = fs.read_text(gin)
    return "MIXTURE_OR_TASK_NAME = 'lm'" not in text


def _tokenizer_dir(checkpoint: epath.Path) -> epath.Path | None:
    for folder in (checkpoint / "tokenizer", checkpoint.parent.parent / "tokenizer"):
        if folder.is_dir():
            return folder
    return None


def export_hf(checkpoint: fs.PathLike, out: fs.PathLike, max_shard_bytes: int = 2 << 30,
              overwrite: bool = False) -> list[str]:
    """Writes config.json, safetensors shards, tokenizer files into `out`; returns notes for the user.
    A non-empty `out` is refused unless `overwrite`; the files are written beside it and renamed into
    place when complete (convert/output_dir.py)."""
    return write_staged(out, overwrite, lambda staging: _write_export(checkpoint, staging, max_shard_bytes))


def _write_export(checkpoint: fs.PathLike, out: fs.PathLike, max_shard_bytes: int) -> list[str]:
    checkpoint, out = fs.absolute(checkpoint), fs.path(out)
    params, cfg_dict = restore_params(checkpoint)
    if cfg_dict is None:
        raise FileNotFoundError(f"{checkpoint}: no model_config.json next to the checkpoint")
    cfg = ModelConfig.from_dict(cfg_dict)
    if cfg.parallel_block:
        raise ValueError(f"{checkpoint}: PaLM-style parallel blocks have no HF architecture among "
                         f"{list(fam.ARCHITECTURES)}")
    # The imported config.json (or the family that holds this shape); refused before anything is written.
    hf = fam.hf_config_from(cfg, read_json_beside(checkpoint, "hf_config"))
    params = jax.tree.map(np.asarray, params)
    write_sharded(out, hf_tensors(cfg, params, fam.family_of(hf)), max_shard_bytes)
    # what the shards hold ("dtype" for transformers >= 5, "torch_dtype" before)
    hf["dtype"] = hf["torch_dtype"] = str(np.asarray(params["embedding"]).dtype)
    fs.write_json(out / "config.json", hf)
    vocab = read_json_beside(checkpoint, "vocab")
    notes = write_tokenizer(out, _tokenizer_dir(checkpoint), vocab)
    if vocab is not None:
        fs.write_json(out / "flan_ul2r_vocab.json", vocab)
    if _trained_with_prefix(checkpoint):
        notes.append("trained with prefix-LM attention: HF transformers runs it causally (inputs no longer "
                     "see ahead); quality on prefix-style prompts may differ")
    return notes
