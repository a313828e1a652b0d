"""Our KV-cache greedy decoding against HF transformers' `generate` on the same imported weights: a tiny
random Llama and a Mistral whose sliding window is shorter than the sequences, prompts of mixed lengths
left-padded in one batch (transformers derives positions from the attention mask, as we do)."""
import numpy as np
import pytest

import flan_ul2r

pytestmark = pytest.mark.parity

PROMPT_LENGTHS = (3, 11, 7, 1)
NEW_TOKENS = 12


def _hf_model(kind: str, directory):
    import torch
    import transformers

    torch.manual_seed(0)
    common = dict(vocab_size=160, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    if kind == "llama":
        cfg = transformers.LlamaConfig(**common)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.MistralConfig(**common, sliding_window=5)
        model = transformers.MistralForCausalLM(cfg)
    model.eval().save_pretrained(directory, safe_serialization=True)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_greedy_equals_transformers_generate(kind, tmp_path):
    import torch

    hf = _hf_model(kind, tmp_path)
    rng = np.random.default_rng(1)
    prompts = [rng.integers(3, 160, size=n).tolist() for n in PROMPT_LENGTHS]
    width = max(PROMPT_LENGTHS)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.as_tensor(p)
        mask[i, width - len(p):] = 1
    with torch.no_grad():
        ref = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False,
                          eos_token_id=None, pad_token_id=0)[:, width:].tolist()
    ours = flan_ul2r.load_model(tmp_path)  # no tokenizer in the directory: token ids only
    assert ours.vocab is None and ours.max_length == 64 and not ours.prefix_lm
    assert ours.config.sliding_window == (5 if kind == "mistral" else None)  # shorter than the sequences
    got = ours.generate_batch(prompts, max_new_tokens=NEW_TOKENS, stop_at_eos=False)
    assert [g[0] for g in got] == ref
