"""The Flan fast path against the text reference (`templates.render`), token ids against the
vocabulary, and FLAN v2's formatting behaviour (few-shot counts and budget, options, CoT triggers)."""

import collections
import math

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from flan_ul2r.data.flan import patterns as fp
from flan_ul2r.data.flan.instruction_tasks import InstructionRenderer, InstructionTask
from flan_ul2r.data.flan.layout import build_layout
from flan_ul2r.data.flan.plan import plan
from flan_ul2r.data.flan.suite.tasks import SUITE, generate
from flan_ul2r.data.flan.templates import STYLES, RenderFormat, Template, render
from flan_ul2r.data.vocab.vocabularies import get_vocabulary

ALL_STYLES = dict.fromkeys(STYLES, 1.0)
INVERSIONS = (Template("The answer is {answer}. What was the question?", "{answer} answers it"),)
TASKS = {t.name: t for t in SUITE}


def _layout(task, n=300, inversion_rate=0.2, style_mix=ALL_STYLES):
    pools = {"train": generate(task, n), "validation": generate(task, 60, "validation")}
    return pools, build_layout(
        task.name, pools, None, task.templates, INVERSIONS, style_mix, None, inversion_rate, task.lettered
    )


def _format(p, r):
    prefix = fp.FEW_SHOT_PREFIXES[p.prefix[r]]
    return RenderFormat(
        prefix[0],
        prefix[1],
        fp.X_Y_DELIMITERS[p.delimiter[r]],
        fp.EXAMPLE_SEPARATORS[p.separator[r]],
        fp.OPTION_HEADERS[p.header[r]],
        fp.OPTION_MARKERS[p.marker[r]],
        fp.COT_TRIGGERS[p.trigger[r]],
        fp.ANSWER_LEADS[p.lead[r]],
    )


def _seeds(n, seed=7):
    return np.stack([np.full(n, seed), np.arange(n) * 7 + 3], axis=1)


@pytest.mark.parametrize("task", SUITE, ids=lambda t: t.name)
def test_fast_path_text_equals_render(task):
    pools, layout = _layout(task)
    for split in ("train", "validation"):
        n = len(pools[split])
        p = plan(layout, split, np.arange(n), _seeds(n), None)
        for r in range(n):
            template = (INVERSIONS if p.inverted[r] else task.templates)[p.template[r]]
            shots = [pools["train"][i] for i in p.shots[r] if i >= 0]
            expected = render(pools[split][r], template, STYLES[p.style[r]], shots, fmt=_format(p, r))
            assert (layout.pieces.text(p.inputs[r]), layout.pieces.text(p.targets[r])) == expected


def test_formatting_draws_cover_flan_pools():
    pools, layout = _layout(TASKS["compare_numbers"], n=2000, inversion_rate=0.0)
    p = plan(layout, "train", np.arange(2000), _seeds(2000), None)
    opt = np.isin(p.style, [STYLES.index("zs_opt"), STYLES.index("fs_opt")])
    assert len(set(p.header[opt])) == len(fp.OPTION_HEADERS)
    assert len(set(p.marker[opt])) == len(fp.OPTION_MARKERS)
    few = np.isin(p.style, [STYLES.index("fs_opt"), STYLES.index("fs_noopt")])
    assert len(set(p.prefix[few])) == len(fp.FEW_SHOT_PREFIXES)
    assert len(set(p.separator[few])) == len(fp.EXAMPLE_SEPARATORS)
    cot = np.isin(p.style, [STYLES.index("cot"), STYLES.index("fs_cot")])
    assert set(p.trigger[cot]) == set(
        range(len(fp.COT_TRIGGERS))
    )  # every training trigger, never the eval one
    # lettered markers rewrite the target to the option's label (FLAN's format_options_non_deterministic)
    for r in np.flatnonzero(opt)[:200]:
        marker, ex = fp.OPTION_MARKERS[p.marker[r]], pools["train"][r]
        target = layout.pieces.text(p.targets[r])
        j = ex["options"].index(ex["answer"])
        assert target == (marker.target(j) if marker.answer else ex["answer"])
        assert f"\n{marker.label(j)} {ex['answer']}" in layout.pieces.text(p.inputs[r])


def test_evaluation_trigger_never_in_training():
    assert all(fp.EVAL_COT_TRIGGER not in t for t in fp.COT_TRIGGERS)
    pools, layout = _layout(TASKS["word_problem"], inversion_rate=0.0, style_mix={"cot": 1, "fs_cot": 1})
    p = plan(layout, "train", np.arange(300), _seeds(300), None)
    texts = [layout.pieces.text(row) for row in p.inputs]
    assert not any(fp.EVAL_COT_TRIGGER in t for t in texts)
    assert all(any(trig in t for trig in fp.COT_TRIGGERS) for t in texts)
    zero_shot = [t for t, s in zip(texts, p.style) if STYLES[s] == "cot"]
    assert zero_shot and all(any(t.endswith(trig) for trig in fp.COT_TRIGGERS) for t in zero_shot)


def test_shot_counts_follow_flan_and_exemplars_are_distinct_and_never_the_example():
    pools, layout = _layout(TASKS["add_two"], n=2000, inversion_rate=0.0, style_mix={"fs_noopt": 1})
    n = 2000
    p = plan(layout, "train", np.arange(n), _seeds(n), None)
    counts = (p.shots >= 0).sum(axis=1)
    for r in range(n):
        used = p.shots[r][p.shots[r] >= 0]
        assert len(set(used)) == len(used) and r not in used
    # Binomial(25, 0.1) given >= 1, capped at 10 (FLAN few_shot.py 0to10_x_shot), computed here directly
    pmf = {k: math.comb(25, k) * 0.1**k * 0.9 ** (25 - k) for k in range(26)}
    z = 1 - pmf[0]
    mean = sum(min(k, 10) * pmf[k] for k in range(1, 26)) / z
    var = sum(min(k, 10) ** 2 * pmf[k] for k in range(1, 26)) / z - mean**2
    assert counts.min() >= 1 and counts.max() <= 10
    assert abs(counts.mean() - mean) < 4 * math.sqrt(var / n)


def test_few_shot_prompts_fit_the_budget_or_fall_back_to_zero_shot():
    vocab = get_vocabulary("byte")
    pools, layout = _layout(
        TASKS["multi_step_arithmetic"], n=400, inversion_rate=0.0, style_mix={"fs_cot": 1}
    )
    tokens = layout.pieces.tokenize(vocab)
    p = plan(layout, "train", np.arange(400), _seeds(400), (tokens.lengths, 512))
    _, lengths = tokens.assemble(p.inputs)
    shots = (p.shots >= 0).sum(axis=1)
    budget = fp.few_shot_budget(512)
    assert budget == 480  # 1920 of 2048
    assert ((lengths + 1 <= budget) | (shots == 0)).all()
    assert (shots > 0).any() and (shots == 0).any()  # long problems: some prompts lose every exemplar
    assert set(np.array(STYLES)[p.style[shots == 0]]) == {"cot"}  # ... and are rendered zero-shot


def _renderer(task, vocab):
    pools = {"train": generate(task, 300)}
    definition = InstructionTask(
        task.name,
        lambda split: pools[split],
        task.templates,
        task.family,
        ALL_STYLES,
        inversions=INVERSIONS,
        inversion_rate=0.2,
        lettered=task.lettered,
    )
    return InstructionRenderer(definition, vocab), pools


def _texts(renderer, n, inputs_length):
    layout = renderer.layout("train")
    tokens = renderer.tokens("train")
    p = plan(layout, "train", np.arange(n), _seeds(n), (tokens.lengths, inputs_length))
    return [(layout.pieces.text(p.inputs[r]), layout.pieces.text(p.targets[r])) for r in range(n)]


def _rows(flat, lengths):
    return np.split(flat, np.cumsum(lengths)[:-1])


@pytest.mark.parametrize("name", ["compare_numbers", "word_problem", "multiple_choice", "date_add"])
def test_byte_ids_equal_encoding_the_rendered_text(name):
    vocab = get_vocabulary("byte")
    renderer, _ = _renderer(TASKS[name], vocab)
    x, x_len, y, y_len, styles, tasks = renderer.block(np.arange(200), _seeds(200), "train", 1024)
    for (xt, yt), xi, yi in zip(_texts(renderer, 200, 1024), _rows(x, x_len), _rows(y, y_len)):
        assert xi.tolist() == list(vocab.encode(xt)) + [vocab.eos_id]
        assert yi.tolist() == list(vocab.encode(yt)) + [vocab.eos_id]
    assert set(tasks) == {name.encode(), (name + "_ii").encode()}


def _train_bpe(path, texts, metaspace):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if metaspace:  # SentencePiece-style: a word-start marker, prepended to the first word
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
        alphabet = sorted(set("".join(texts)) | {"\u2581"})
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path / "tokenizer.json"))
    return get_vocabulary(f"hf:{path}")


@pytest.mark.parametrize("metaspace", [False, True], ids=["byte_level_bpe", "metaspace_bpe"])
def test_subword_ids_decode_to_the_rendered_text(tmp_path, metaspace):
    task = TASKS["compare_numbers"]
    byte_renderer, _ = _renderer(task, get_vocabulary("byte"))
    texts = [t for pair in _texts(byte_renderer, 300, 2048) for t in pair]
    vocab = _train_bpe(tmp_path, texts, metaspace)
    renderer, _ = _renderer(task, vocab)
    x, x_len, y, y_len, _, _ = renderer.block(np.arange(300), _seeds(300), "train", 2048)
    same = 0
    for (xt, yt), xi, yi in zip(_texts(renderer, 300, 2048), _rows(x, x_len), _rows(y, y_len)):
        assert xi[-1] == yi[-1] == vocab.eos_id
        assert vocab.decode(xi[:-1].tolist()) == xt and vocab.decode(yi[:-1].tolist()) == yt
        assert xi[0] == vocab.encode(xt)[0]  # a prompt starts as the whole text's encoding does
        same += xi[:-1].tolist() == list(vocab.encode(xt))
    assert same > 0  # joins at piece boundaries often tokenize as the whole text does


class _CountingVocabulary:
    """A vocabulary that counts the texts it batch-encodes (how the pieces are tokenized)."""

    def __init__(self, vocabulary):
        self.vocabulary, self.encoded = vocabulary, 0

    def __getattr__(self, name):
        return getattr(self.vocabulary, name)

    def encode_batch(self, texts):
        self.encoded += len(texts)
        return self.vocabulary.encode_batch(texts)


def test_pieces_are_tokenized_on_first_use_and_blocks_do_not_depend_on_the_order(tmp_path):
    """A block tokenizes only the pieces it lays out, and a block's ids are the same whether the renderer
    tokenized other pieces before it, all of them first (what the eager table did), or none."""
    task = TASKS["word_problem"]
    byte_renderer, _ = _renderer(task, get_vocabulary("byte"))
    vocab = _train_bpe(tmp_path, [t for pair in _texts(byte_renderer, 300, 2048) for t in pair], False)
    a, b = np.arange(0, 40), np.arange(200, 240)

    def blocks(order, eager=False):
        counting = _CountingVocabulary(vocab)
        renderer, _ = _renderer(task, counting)
        assert counting.encoded == 0 and renderer.num_records("train") == 300  # start-up encodes nothing
        if eager:
            renderer.tokens("train").lengths(np.arange(len(renderer.layout("train").pieces)))
        out = {name: renderer.block(idx, _seeds(len(idx)), "train", 512)[:4] for name, idx in order}
        return out, counting.encoded

    first, used_a = blocks([("a", a)])
    reordered, used_ab = blocks([("b", b), ("a", a)])
    eager, used_all = blocks([("a", a), ("b", b)], eager=True)
    # 40 of 300 examples (and their exemplars) need a small share of the pieces
    assert used_a < used_all / 5 and used_a < used_ab < used_all
    for name, runs in (("a", (first, reordered, eager)), ("b", (reordered, eager))):
        for other in runs[1:]:
            for x, y in zip(runs[0][name], other[name]):
                np.testing.assert_array_equal(x, y)


def test_option_markers_and_shot_distribution_helpers():
    assert fp.OPTION_MARKERS[4].label(2) == "(C)" and fp.OPTION_MARKERS[4].target(2) == "(C)"
    assert fp.OPTION_MARKERS[0].label(2) == "-" and fp.OPTION_MARKERS[0].target(2) is None
    cdf = fp.shot_count_cdf()
    assert len(cdf) == 10 and cdf[-1] == 1.0 and all(a < b for a, b in zip(cdf, cdf[1:]))
    counts = collections.Counter(np.searchsorted(cdf, np.linspace(0, 1, 10001)[:-1], side="right") + 1)
    assert counts[2] > counts[1] and counts[2] > counts[4]  # mode of Binomial(25, 0.1) is 2
