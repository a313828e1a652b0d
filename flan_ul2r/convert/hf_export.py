"""flan-ul2r checkpoint -> HF safetensors directory that `AutoModelForCausalLM.from_pretrained` loads.

HF transformers has no prefix-LM attention for these architectures: the exported model attends causally
everywhere. A UL2R-trained model still works that way (mode tokens and infilling prompts are causal
prompts), but inputs no longer see ahead; `export_hf` says so when the run trained with a prefix.
Checkpoints and output directories may be local or remote (flan_ul2r/fs.py).
"""
from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np
from etils import epath

from flan_ul2r import fs
from flan_ul2r.convert import hf_families as fam
from flan_ul2r.convert.output_dir import write_staged
from flan_ul2r.convert.safetensors_io import write_sharded
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training.checkpoints import read_json_beside, restore_params


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


def appended_token_names(vocab: dict[str, Any]) -> dict[int, str]:
    """id -> name (`<extra_id_N>`, `[NLU]`...) of the ids the vocabulary appended (describe() dict)."""
    names = {int(i): f"<extra_id_{j}>" for j, i in enumerate(vocab.get("sentinels", {}).get("ids", []))}
    names.update({int(m["id"]): name for name, m in vocab.get("mode_tokens", {}).items()})
    appended = [int(i) for i in vocab.get("appended_ids", [])]
    missing = [i for i in appended if i not in names]
    if missing:
        raise ValueError(f"vocab.json: appended_ids {missing[:5]} are neither sentinels nor mode tokens")
    return {i: names[i] for i in sorted(appended)}


def add_appended_tokens(tokenizer_json: fs.PathLike, vocab: dict[str, Any]) -> bool:
    """Adds the appended sentinel/mode ids to tokenizer.json as special added tokens, so the exported
    tokenizer encodes `<extra_id_0>` / `[NLU]` to the ids the model was trained with. False if no file."""
    tokenizer_json = fs.path(tokenizer_json)
    if not tokenizer_json.is_file():
        return False
    from tokenizers import Tokenizer

    data = fs.read_json(tokenizer_json)
    have = {t["content"] for t in data.get("added_tokens", [])}
    for i, name in appended_token_names(vocab).items():
        if name not in have:
            data.setdefault("added_tokens", []).append(
                {"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True})
    text = json.dumps(data, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_str(text)
    wrong = {n: tok.token_to_id(n) for i, n in appended_token_names(vocab).items() if tok.token_to_id(n) != i}
    if wrong:
        raise ValueError(f"{tokenizer_json}: appended tokens would get other ids than in vocab.json: "
                         f"{dict(list(wrong.items())[:5])}")
    fs.write_text(tokenizer_json, text)
    return True


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
    # what the shards hold ("dtype" for transformers >= 5, "torch_dtype" before)
    hf["dtype"] = hf["torch_dtype"] = str(np.asarray(params["embedding"]).dtype)
    fs.write_json(out / "config.json", hf)
    tok = _tokenizer_dir(checkpoint)
    if tok is not None:
        for f in tok.iterdir():
            fs.copy_file(f, out / f.name)
    vocab = read_json_beside(checkpoint, "vocab")
    if vocab is not None:
        fs.write_json(out / "flan_ul2r_vocab.json", vocab)
        if vocab.get("appended_ids"):
            written = add_appended_tokens(out / "tokenizer.json", vocab)
            notes.append(f"{len(vocab['appended_ids'])} sentinel/mode-token ids were appended to the "
                         "vocabulary; their mapping is in flan_ul2r_vocab.json" +
                         (" and they are special tokens of tokenizer.json" if written else ""))
    if _trained_with_prefix(checkpoint):
        notes.append("trained with prefix-LM attention: HF transformers runs it causally (inputs no longer "
                     "see ahead); quality on prefix-style prompts may differ")
    return notes
