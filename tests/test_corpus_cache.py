"""Token corpus cache: tokens equal per-document encoding, chunks equal a brute-force cut, the cache is keyed
by its inputs and written atomically, the validation split is a disjoint ~1%; the default corpus holds the
stdlib's own docstrings."""
from __future__ import annotations

import inspect
import json
import os
import shutil

import numpy as np
import pytest

from flan_ul2r.data.corpus import token_cache as corpus_cache
from flan_ul2r.data.corpus.token_cache import TokenCorpus, build_corpus
from flan_ul2r.data.corpus.validation_split import ordinal_mask
from flan_ul2r.data.vocab.vocabularies import ByteVocabulary

DOCS = ["alpha beta gamma", "", "delta " * 50, "   ", "épsilon ✓", "z"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAN_UL2R_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tokens_and_offsets_match_per_document_encoding(tmp_path):
    v = ByteVocabulary()
    c = TokenCorpus.build(DOCS, v, tmp_path / "c")
    want = [v.encode(d) for d in DOCS if d]
    assert c.num_documents == len(want) and c.stats["empty_documents"] == 1  # "" has no token; "   " has
    assert [c.document(i).tolist() for i in range(c.num_documents)] == want
    assert np.asarray(c.tokens).tolist() == [t for w in want for t in w]
    assert isinstance(c.tokens, np.memmap) and c.tokens.dtype == np.int32
    assert json.loads((tmp_path / "c" / "stats.json").read_text())["tokens"] == sum(map(len, want))


def _brute_chunks(docs: list[list[int]], max_len: int, min_len: int) -> list[tuple[int, int]]:
    rows, pos = [], 0
    for d in docs:
        for a in range(0, len(d), max_len):
            piece = d[a:a + max_len]
            if len(piece) >= min_len:
                rows.append((pos + a, len(piece)))
        pos += len(d)
    return rows


@pytest.mark.parametrize("max_len,min_len", [(1, 1), (7, 1), (16, 5), (1000, 1)])
def test_chunks_equal_brute_force(tmp_path, max_len, min_len):
    rng = np.random.default_rng(max_len)
    texts = ["x" * int(n) for n in rng.integers(1, 60, size=40)]
    c = TokenCorpus.build(texts, ByteVocabulary(), tmp_path / "c")
    got = [tuple(r) for r in c.chunks(max_len, min_len=min_len).tolist()]
    assert got == _brute_chunks([[0] * len(t) for t in texts], max_len, min_len)
    assert c.chunks(max_len).dtype == np.int64


def test_cache_is_keyed_by_inputs_and_reused(tmp_path, _cache):
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(json.dumps({"text": d}) for d in DOCS) + "\n")
    v = ByteVocabulary()
    a = build_corpus(f"jsonl:{src}", v)
    assert a.stats["empty_documents"] == 2 and a.stats["documents"] == 4
    assert a.path.parent == _cache / "corpus"
    mtime = os.path.getmtime(a.path / "tokens.npy")
    b = build_corpus(f"jsonl:{src}", v)
    assert b.path == a.path and os.path.getmtime(b.path / "tokens.npy") == mtime  # loaded, not rebuilt
    src.write_text(json.dumps({"text": "changed document"}) + "\n")
    c = build_corpus(f"jsonl:{src}", v)
    assert c.path != a.path and c.num_documents == 1
    assert c.document(0).tolist() == v.encode("changed document")
    assert sorted(p.name.split("-")[0] for p in (_cache / "corpus").iterdir()) == ["jsonl", "jsonl"]


def test_interrupted_build_leaves_no_cache(_cache):
    v = ByteVocabulary()
    calls = []

    def failing(stats):
        calls.append(1)
        yield "one document"
        raise KeyboardInterrupt  # a kill in the middle of tokenizing

    with pytest.raises(KeyboardInterrupt):
        TokenCorpus.cached({"k": 1}, failing, v, name="x")
    assert list((_cache / "corpus").iterdir()) == []  # no half-written cache, no temp dir left over
    c = TokenCorpus.cached({"k": 1}, lambda stats: ["one document", "two"], v, name="x")
    assert c.num_documents == 2 and c.stats["build_seconds"] >= 0


def test_validation_split_is_deterministic_disjoint_and_about_one_percent(tmp_path):
    mask = ordinal_mask(50_000)
    assert 0.008 < mask.mean() < 0.012
    assert np.array_equal(mask, ordinal_mask(50_000)) and np.array_equal(mask[:100], ordinal_mask(100))
    texts = [f"doc {i}" for i in range(3000)]
    c = TokenCorpus.build(texts, ByteVocabulary(), tmp_path / "c")
    train, val = c.split("train"), c.split("validation")
    assert train.num_documents + val.num_documents == 3000 and 10 < val.num_documents < 60
    val_texts = {ByteVocabulary().decode(val.document(i)) for i in range(val.num_documents)}
    train_texts = {ByteVocabulary().decode(train.document(i)) for i in range(train.num_documents)}
    assert val_texts == {texts[i] for i in np.flatnonzero(ordinal_mask(3000))}
    assert not val_texts & train_texts
    rows = val.chunks(4)
    assert sum(int(n) for _, n in rows) == val.num_tokens


def test_huge_single_document_is_chunked_not_dropped(tmp_path):
    big = "abcd " * 1_000_000  # 5 MB, one document
    c = TokenCorpus.build([big, "tail"], ByteVocabulary(), tmp_path / "c")
    rows = c.chunks(2048)
    assert len(rows) == -(-len(big) // 2048) + 1 and rows[:, 1].max() == 2048
    assert rows[-2, 0] + rows[-2, 1] == len(big)


def test_hf_vocabulary_uses_batch_api_and_long_texts_are_cut_at_whitespace(tmp_path, monkeypatch):
    import tokenizers
    from tokenizers import models, pre_tokenizers, trainers

    from flan_ul2r.data.vocab.vocabularies import get_vocabulary

    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(rng.integers(5, 400)))) for _ in range(50)]
    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "</s>"],
                                                       show_progress=False))
    tok.save(str(tmp_path / "tokenizer.json"))
    v = get_vocabulary(f"hf:{tmp_path / 'tokenizer.json'}")
    monkeypatch.setattr(corpus_cache, "_PIECE_CHARS", 64)  # force long-text cutting on these small texts
    c = TokenCorpus.build(texts, v, tmp_path / "c")
    for i in (0, 17, 49):  # cutting at whitespace gives the same ids as the tokenizer on the whole text
        assert c.document(i).tolist() == tok.encode(texts[i], add_special_tokens=False).ids


def test_default_corpus_holds_stdlib_docstrings(_cache):
    from flan_ul2r.data.corpus import default_corpus as dc

    root = dc.stdlib_root()
    json_dir = root / "json"
    docs = dc.extract_documents(json_dir)  # one stdlib package, read with ast only
    import json as json_module  # independent reference: the docstrings Python itself reports
    import json.decoder
    import json.encoder

    want = set()
    for mod in (json_module, json.decoder, json.encoder):
        objs = [mod] + [o for _, o in inspect.getmembers(mod) if getattr(o, "__module__", "") == mod.__name__]
        objs += [m for o in objs if inspect.isclass(o) for m in vars(o).values() if inspect.isfunction(m)]
        want |= {dc._normalise(inspect.cleandoc(o.__doc__)) for o in objs
                 if o.__doc__ and len(inspect.cleandoc(o.__doc__)) >= dc.MIN_CHARS}
    assert want and want <= set(docs)
    assert all(len(d) >= 60 and "  " not in d.replace("\n\n", "") for d in docs)
    assert dc.DEFAULT_CORPUS == "stdlib_docstrings"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dc.extract_documents(root / "no_such_dir")


def test_default_corpus_is_cached_as_text_and_tokens(_cache, monkeypatch, tmp_path):
    from flan_ul2r.data.corpus import default_corpus as dc

    fake = tmp_path / "stdlib"
    (fake / "pkg" / "tests").mkdir(parents=True)
    doc = "This module explains things at length, " * 4
    comment = ("A comment block that reads as prose, explaining why the code below does what it does, "
               "over two lines.")
    (fake / "pkg" / "mod.py").write_text(
        f'"""{doc}"""\n\n# {comment[:51]}\n# {comment[51:]}\n\ndef f():\n    """short"""\n'
        "    # x = compute(a[0], b[1]) + {k: v for k, v in pairs.items()} - 1234567890 / 42\n")
    (fake / "pkg" / "tests" / "test_mod.py").write_text(f'"""{doc} test"""\n')
    monkeypatch.setattr(dc, "stdlib_root", lambda: fake)
    spec = dc.default_corpus_spec()
    assert spec.kind == "jsonl" and dc.default_corpus_documents() == [doc.strip(), comment]
    c = dc.load_default_corpus(ByteVocabulary())
    assert c.document(0).tolist() == ByteVocabulary().encode(doc.strip())
    shutil.rmtree(fake)  # both caches answer without the sources
    assert dc.load_default_corpus(ByteVocabulary()).num_tokens == c.num_tokens
