"""Inputs on remote storage (tests/fake_gcs.py's in-memory gs://): corpora, instruction files, tokenizers
and HF directories are read, and HF exports and params checkpoints written, with the same results as
local files."""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r import fs
from flan_ul2r.convert.hf_export import export_hf
from flan_ul2r.convert.hf_import import import_hf
from flan_ul2r.data.corpus.sources import read_documents, source_fingerprint
from flan_ul2r.data.flan.formats import read_niv2
from flan_ul2r.data.vocab.vocabularies import get_vocabulary
from flan_ul2r.models.config import preset
from flan_ul2r.models.decoder import Decoder
from flan_ul2r.training.checkpoints import restore_params, save_params
from tests.fake_gcs import fake_gcs

B = "gs://flan-test-bucket"


def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<unk>", "</s>", "<pad>", "hello", "remote", "world"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok.to_str()


def test_corpora_instruction_files_and_tokenizers_on_gcs():
    with fake_gcs():
        fs.write_text(f"{B}/data/a.jsonl", '{"text": "hello"}\n{"text": "world"}\n')
        fs.write_text(f"{B}/data/b.jsonl", '{"text": "again"}\n')
        docs = list(read_documents(f"jsonl:{B}/data/*.jsonl"))
        assert [(d.text, d.provenance) for d in docs] == [("hello", f"{B}/data/a.jsonl:1"),
                                                          ("world", f"{B}/data/a.jsonl:2"),
                                                          ("again", f"{B}/data/b.jsonl:1")]
        files = source_fingerprint(f"jsonl:{B}/data/*.jsonl")["files"]
        assert [(f[0], f[1]) for f in files] == [(f"{B}/data/a.jsonl", 36), (f"{B}/data/b.jsonl", 18)]
        with pytest.raises(FileNotFoundError, match="pattern matches no file"):
            list(read_documents(f"jsonl:{B}/nothing/*.jsonl"))

        fs.write_json(f"{B}/niv2/task1.json", {"Definition": ["Answer it."], "Instances": [
            {"input": "1+1?", "output": ["2"]}]})
        expected = [{"definition": "Answer it.", "input": "1+1?", "answer": "2"}]
        assert read_niv2(f"{B}/niv2/task1.json") == expected

        fs.write_text(f"{B}/tok/tokenizer.json", _tokenizer_json())
        vocab = get_vocabulary(f"hf:{B}/tok")
        assert vocab.encode("hello remote world") == [3, 4, 5]
        assert vocab.describe()["sentinels"]["count"] == 100


@pytest.mark.slow
def test_hf_export_and_import_through_gcs(tmp_path):
    cfg = preset("tiny", vocab_size=300, d_model=32, num_heads=4, num_kv_heads=2, head_dim=8, d_ff=64)
    boxed = Decoder(cfg).init(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32))["params"]
    params = jax.tree.map(np.asarray, nn.meta.unbox(boxed))
    save_params(tmp_path / "ours", params, cfg.to_dict())
    with fake_gcs() as store:
        export_hf(tmp_path / "ours", f"{B}/hf", max_shard_bytes=40_000)  # several shards + an index
        assert json.loads(fs.read_text(f"{B}/hf/model.safetensors.index.json"))["weight_map"]
        import_hf(f"{B}/hf", f"{B}/imported")
        back, stored_cfg = restore_params(f"{B}/imported")
        assert stored_cfg["d_model"] == 32
        assert any(name.startswith("flan-test-bucket/imported/params/") for name in store.names())
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_gin_files_on_gcs():
    import gin

    from flan_ul2r.errors import ConfigError
    from flan_ul2r.gin_utils import parse_gin

    @gin.configurable("remote_gin_probe")
    def probe(steps=1):
        return steps

    with fake_gcs():
        fs.write_text(f"{B}/gin/run.gin", "remote_gin_probe.steps = 7\n")
        gin.clear_config()
        try:
            parse_gin([f"{B}/gin/run.gin"], [], finalize=False)
            assert probe() == 7
        finally:
            gin.clear_config()
        with pytest.raises(ConfigError, match="no such file"):  # the CLI's exit status 2
            parse_gin([f"{B}/gin/missing.gin"], [], finalize=False)
