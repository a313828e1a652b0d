"""The pipeline from a user's HF model (gin/pipelines/hf_model.gin, shrunk to seconds): a tiny random Qwen3
with its own BPE tokenizer is imported, UL2R- and Flan-trained, evaluated and exported; transformers loads
the export with the same logits as our final checkpoint, and its tokenizer encodes the sentinels and mode
tokens (appended to this vocabulary, which reserves none) to the ids the model was trained with."""
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests._xla import xla_flags

pytestmark = [pytest.mark.parity, pytest.mark.subprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "XLA_FLAGS": xla_flags(1)}
PROSE = " ".join(inspect.getdoc(m) or "" for m in (json, textwrap, inspect)) * 2


def _tiny_qwen3(directory: Path) -> None:
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=480, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(PROSE.split(". "), trainer)
    directory.mkdir()
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}))
    torch.manual_seed(0)
    config = transformers.Qwen3Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      head_dim=8, max_position_embeddings=256, tie_word_embeddings=True,
                                      eos_token_id=0)
    transformers.Qwen3ForCausalLM(config).save_pretrained(directory, safe_serialization=True)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_pipeline")
    _tiny_qwen3(root / "qwen3")
    (root / "corpus.txt").write_text("\n".join(textwrap.wrap(PROSE, 400)))
    lengths = "{'inputs': 96, 'targets': 32}"
    cmd = [sys.executable, "-m", "flan_ul2r.cli", "pipeline", "--gin_file=gin/pipelines/hf_model.gin",
           f"--gin.MODEL_DIR={root / 'run'}", f"--gin.HF_DIR={root / 'qwen3'}",
           f"--gin.UL2R_VOCABULARY='hf:{root / 'qwen3'}'", f"--gin.UL2R_CORPUS='text:{root / 'corpus.txt'}'",
           "--gin.FLAN_COLLECTION=None", "--gin.BASE_PRETRAINING_TOKENS=1e6", "--gin.UL2R_STEPS=3",
           "--gin.FLAN_STEPS=2", "--gin.BATCH_SIZE=2", "--gin.pipeline.import_dtype='float32'",
           f"--gin.ul2r/RunConfig.task_feature_lengths={lengths}",
           f"--gin.flan/RunConfig.task_feature_lengths={lengths}",
           "--gin.EvalStageConfig.suites=('heldout_zs.add_three',)", "--gin.EvalStageConfig.max_examples=2",
           "--gin.EvalStageConfig.infilling_examples=2", "--gin.EvalStageConfig.too_long='skip'"]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    return root


@pytest.mark.slow
def test_imported_qwen3_runs_the_pipeline_and_exports_what_transformers_loads(pipeline_dir):
    import torch
    import transformers

    import flan_ul2r

    run = pipeline_dir / "run"
    for stage in ("base", "ul2r", "flan", "flan_ul2r", "export-hf"):
        assert json.loads((run / stage / "stage.json").read_text())["stage"] == stage
    ours = flan_ul2r.load_model(run / "flan_ul2r" / "checkpoints" / "2")
    assert ours.config.qk_norm == "head" and ours.config.vocab_size > 480  # sentinels and modes appended
    back = transformers.AutoModelForCausalLM.from_pretrained(run / "export-hf").eval()
    assert type(back).__name__ == "Qwen3ForCausalLM"
    tokens = np.random.default_rng(0).integers(1, ours.config.vocab_size, size=(2, 48))
    with torch.no_grad():
        ref = back(torch.as_tensor(tokens)).logits.numpy()
    np.testing.assert_allclose(ours.logits(tokens), ref, atol=1e-4, rtol=0)
    base = flan_ul2r.load_model(run / "base")  # training moved the weights away from the import
    assert np.abs(base.logits(tokens) - ref).max() > 1e-3


def test_exported_tokenizer_round_trips_sentinels_and_mode_tokens(pipeline_dir):
    import transformers

    import flan_ul2r

    run = pipeline_dir / "run"
    vocab = json.loads((run / "export-hf" / "flan_ul2r_vocab.json").read_text())
    tok = transformers.AutoTokenizer.from_pretrained(run / "export-hf")
    ours = flan_ul2r.load_model(run / "flan_ul2r" / "checkpoints" / "2").vocab
    sentinels = vocab["sentinels"]["ids"]
    for name, token_id in [("<extra_id_0>", sentinels[0]), ("<extra_id_99>", sentinels[99]),
                           *[(m, v["id"]) for m, v in vocab["mode_tokens"].items()]]:
        assert tok.encode(name, add_special_tokens=False) == [token_id]
        assert tok.decode([token_id]) == name
    text = "[NLG] The module <extra_id_0> strings. <extra_id_1>"
    ids = tok.encode(text, add_special_tokens=False)
    assert ids[0] == vocab["mode_tokens"]["[NLG]"]["id"] and sentinels[1] == ids[-1]
    assert tok.decode(ids) == text == ours.decode(ids)
    plain = "Encode this with the model's own tokenizer."
    assert tok.encode(plain, add_special_tokens=False) == list(ours.encode(plain))
