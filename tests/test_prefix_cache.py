"""The shared few-shot prefix (flan_ul2r/decoding/prefix_cache.py) on real few-shot prompts (MMLU 5-shot and
BBH 3-shot CoT from the fixtures, byte vocabulary): scores equal the plain path's to 1e-5 and greedy
generations are identical, for a Llama-style and a PaLM/Gemma-style model; and where it must not apply."""
import functools
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r.api import LoadedModel
from flan_ul2r.data.vocab.vocabularies import ByteVocabulary
from flan_ul2r.decoding import prefix_cache
from flan_ul2r.decoding.generate import Placement
from flan_ul2r.evaluation.benchmarks import bbh, mmlu
from flan_ul2r.models import Decoder, preset

FIX = Path(__file__).parent / "fixtures" / "eval"
VOCAB = ByteVocabulary()
CONFIGS = {
    "llama_gqa": preset("tiny", vocab_size=VOCAB.vocab_size),
    "palm_gemma": preset("tiny", vocab_size=VOCAB.vocab_size, parallel_block=True, num_kv_heads=1,
                         tie_embeddings=True, embed_scale=True, norm_scale_offset=1.0,
                         mlp_activation="gelu_tanh"),
}


@functools.cache
def _model(name: str) -> LoadedModel:
    cfg = CONFIGS[name]
    params = nn.meta.unbox(Decoder(cfg).init(jax.random.PRNGKey(1), jnp.ones((1, 8), jnp.int32))["params"])
    # embeddings at the usual initializer range (0.02, as HF configs), so log-likelihoods have a trained
    # model's magnitudes (a few nats per token) and 1e-5 is a meaningful float32 tolerance
    params["embedding"] = params["embedding"] * 0.02
    return LoadedModel(cfg, params, VOCAB, max_length=2048, prefix_lm=False)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model(request):
    return _model(request.param)


@pytest.mark.slow
def test_mmlu_rank_scores_equal_the_plain_path(model):
    examples = mmlu.load(FIX / "mmlu", "abstract_algebra", split="val", num_shots=3)  # short: one length
    contexts = [model.encode_prompt(ex.prompt) for ex in examples for _ in mmlu.LETTERS]
    continuations = [model.tokenize(f" {letter}") for _ in examples for letter in mmlu.LETTERS]
    continuations[1] = model.tokenize(" B. 4 (x + 1)")          # a multi-token continuation too
    shared = prefix_cache.shared_length(contexts, model.config, False, model.placement)
    assert shared > 450                                            # the header and the 3 dev exemplars
    cached = model.score(contexts, continuations, batch_size=4)
    plain = model.score(contexts, continuations, batch_size=4, share_prefix=False)
    np.testing.assert_allclose([s for s, _ in cached], [s for s, _ in plain], atol=1e-5, rtol=0)
    assert [g for _, g in cached] == [g for _, g in plain]


@pytest.mark.slow
def test_bbh_cot_generations_are_identical():
    model = _model("llama_gqa")   # the suffix pass is the scoring test's, checked there on both models
    examples = bbh.load(FIX / "bbh", "boolean_expressions", cot=True)  # 3 queries behind CoT exemplars
    prompts = [model.encode_prompt(ex.without_oldest_shots(1).prompt) for ex in examples]  # 2 of them
    assert prefix_cache.shared_length(prompts, model.config, False, model.placement) > 700
    kwargs = dict(max_new_tokens=12, batch_size=2, stop_at_eos=False)
    cached = model.generate_batch(prompts, **kwargs)
    assert cached == model.generate_batch(prompts, **kwargs, share_prefix=False)
    assert all(len(rows[0]) == 12 for rows in cached)
    kwargs.update(temperature=0.8, num_samples=2, seed=3)   # sampling reads the same per-row keys
    assert model.generate_batch(prompts, **kwargs) == model.generate_batch(prompts, **kwargs,
                                                                           share_prefix=False)


def test_shared_length_is_the_common_prefix_short_of_the_shortest_prompt():
    cfg = CONFIGS["llama_gqa"]
    head = list(range(3, 43))                                   # 40 shared tokens
    seqs = [head + [50, 51], head + [60], head + [50, 52, 53]]
    assert prefix_cache.shared_length(seqs, cfg, False, Placement()) == 40
    assert prefix_cache.shared_length([head + [1], head + [1]], cfg, False, Placement()) == 40  # one kept
    assert prefix_cache.shared_length(seqs, cfg, True, Placement()) == 0           # prefix-LM: bidirectional
    assert prefix_cache.shared_length(seqs, cfg.replace(sliding_window=8), False, Placement()) == 0
    assert prefix_cache.shared_length([head[:20] + [5], head[:20] + [6]], cfg, False, Placement()) == 0
    assert prefix_cache.shared_length([head + [5]], cfg, False, Placement()) == 0
    assert [prefix_cache.prefix_bucket(n) for n in (5, 40, 900, 1025)] == [8, 40, 1024, 1280]


@pytest.mark.slow
def test_bfloat16_weights_decode_and_score_close_to_float32(tmp_path):
    from flan_ul2r.api import load_model
    from flan_ul2r.training import checkpoints

    f32 = _model("llama_gqa")
    checkpoints.save_params(tmp_path / "run", f32.params, f32.config.to_dict(), {"vocab": VOCAB.describe()})
    bf16 = load_model(tmp_path / "run", dtype="bfloat16")
    leaves = jax.tree.leaves(bf16.params)
    assert all(x.dtype == jnp.bfloat16 for x in leaves) and bf16.config.dtype == "bfloat16"
    contexts = [bf16.encode_prompt("The capital of France is"), bf16.encode_prompt("2 + 2 =")]
    conts = [bf16.tokenize(" Paris"), bf16.tokenize(" 4")]
    ours = [s for s, _ in bf16.score(contexts, conts)]
    ref = [s for s, _ in f32.score(contexts, conts)]
    # bfloat16 keeps 8 significant bits (relative error 2^-8 per rounding): a few-token log-likelihood of a
    # 2-layer model moves by a few hundredths at most
    np.testing.assert_allclose(ours, ref, atol=0.1)
    out = bf16.generate_batch(contexts, max_new_tokens=6, stop_at_eos=False, batch_size=2)  # a batch
    assert [len(rows[0]) for rows in out] == [6, 6]
    with pytest.raises(ValueError, match="dtype='float16': float32 or bfloat16"):
        load_model(tmp_path / "run", dtype="float16")
