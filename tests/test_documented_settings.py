"""Every setting the README or a docstring documents reaches the built-in tasks: each binding, parsed as
`flan-ul2r` parses gin and followed by `register_after_gin`, changes the examples the built-in `ul2r` /
`lm` / `flan` tasks render, in the way the documentation says."""
from __future__ import annotations

import collections
import contextlib
import itertools
import json

import gin
import pytest

import flan_ul2r.tasks
from flan_ul2r import gin_utils
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.vocab.default_vocabulary import default_vocabulary

LENGTH = 512
flan_ul2r.tasks.import_all()  # the gin configurables of the built-in registrations


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small JSONL corpus: documents of 3 to 400 words, so 512-byte chunks hold several documents."""
    folder = tmp_path_factory.mktemp("settings_corpus")
    lines = [json.dumps({"text": " ".join(f"w{(i * 7 + j) % 97}" for j in range(3 + (i * 37) % 400))})
             for i in range(300)]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return f'ul2r_corpus.spec = "jsonl:{folder}/docs.jsonl"'


@contextlib.contextmanager
def bound(*bindings: str):
    """The built-in registrations under `bindings`; the defaults are registered again afterwards."""
    gin.clear_config()
    try:
        gin_utils.parse_gin([], list(bindings), finalize=False)
        flan_ul2r.tasks.register_after_gin()
        yield
    finally:
        gin.clear_config()
        flan_ul2r.tasks.register_after_gin()


def rows(task: str, *bindings: str, num: int = 120, inputs: int = LENGTH // 2) -> list[dict]:
    with bound(*bindings):
        it = make_train_iterator(task, {"inputs": inputs, "targets": LENGTH - inputs}, 1, seed=0,
                                 with_strings=True)
        return list(itertools.islice(it.examples(), num))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAN_UL2R_CACHE", str(tmp_path / "cache"))


def test_span_rounding_t5_reaches_the_builtin_mixture(corpus):
    """README: `Denoiser.span_rounding = "t5"` keeps T5's span count round(noise / mu), one count for
    every full-length example; the default (unbiased) varies the count by one between examples."""
    sentinels = set(default_vocabulary().sentinel_ids)
    spans = lambda rs: collections.Counter(sum(int(t) in sentinels for t in r["targets"]) for r in rs)
    default = spans(rows("ul2r_x_32_15", corpus)).most_common()
    t5 = spans(rows("ul2r_x_32_15", corpus, 'Denoiser.span_rounding = "t5"')).most_common()
    assert len(default) >= 2 and default[1][1] > 1, default  # two counts, each in more than one row
    assert sum(n for _, n in t5[1:]) <= 1, t5  # one count; at most the split's one short tail differs


def test_eos_after_inputs(corpus):
    eos = default_vocabulary().eos_id
    ends = lambda rs: [int(r["inputs"][-1]) == eos for r in rs]
    assert all(ends(rows("ul2r_r_3_15", corpus, "ul2r_options.eos_after_inputs = True")))
    assert not all(ends(rows("ul2r_r_3_15", corpus)))


def test_concatenate_and_separator_shape_the_lm_chunks(corpus):
    eos = default_vocabulary().eos_id
    total = lambda rs: [len(r["inputs"]) + len(r["targets"]) for r in rs]
    inner_eos = lambda rs: sum(int(t) == eos for r in rs for t in r["targets"][:-1])
    default = rows("lm", corpus, inputs=0)
    assert sum(n < LENGTH for n in total(default)) <= 1  # T5's concatenate-then-split: full chunks
    assert inner_eos(default) > 0  # an EOS between documents
    per_document = rows("lm", corpus, "ul2r_options.concatenate = False", inputs=0)
    assert sum(n < LENGTH for n in total(per_document)) > len(per_document) // 4  # short documents stay short
    assert inner_eos(rows("lm", corpus, "ul2r_options.separator = False", inputs=0)) == 0


@pytest.mark.slow
def test_flan_style_mixes_and_rates_reach_the_flan_mixture():
    """`flan_mixture.style_mixes` replaces the per-family style mix; `flan_mixture.rates` the family rates."""
    families = ("muffin", "t0sf", "niv2")
    only_zs = "{" + ", ".join(f'"{f}": {{"zs_noopt": 1.0}}' for f in families) + "}"
    no_cot = '{"muffin": 1.0, "t0sf": 1.0, "niv2": 1.0, "cot": 1e-9}'  # every family needs a rate > 0
    styles = {r["style"] for r in rows("flan", f"flan_mixture.style_mixes = {only_zs}",
                                       f"flan_mixture.rates = {no_cot}", num=60)}
    assert styles == {b"zs_noopt"}, styles
    assert len({r["style"] for r in rows("flan", num=60)}) > 1
    cot_only = '{"muffin": 1e-9, "t0sf": 1e-9, "niv2": 1e-9, "cot": 1.0}'
    drawn = {r["task"] for r in rows("flan", f"flan_mixture.rates = {cot_only}", num=40)}
    with bound():
        from flan_ul2r.data.flan.instruction_tasks import family_of

        assert {family_of(t.decode()) for t in drawn} == {"cot"}, drawn
