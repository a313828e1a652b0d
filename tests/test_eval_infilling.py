"""The infilling check (U-PaLM section 4): passages with one blank taken from held-out documents, scored
by exact match / F1 against the removed words, and prompts too long for the model skipped or refused."""
import json

import pytest

from flan_ul2r.data.vocab.vocabularies import get_vocabulary
from flan_ul2r.decoding.loaded_model import Infilled
from flan_ul2r.evaluation.infilling import BLANK, WINDOW_WORDS, evaluate_infilling, make_examples

DOCS = [" ".join(f"w{d}_{i}" for i in range(40 + d)) for d in range(30)] + ["too short"]


class _Oracle:
    """Answers from a table (the removed words for even ids, a wrong word for odd ones), in the denoising
    format (`<extra_id_0> words <extra_id_1>`) except for ids divisible by 3, which only continue the text."""

    def __init__(self, examples, max_length=10_000):
        self.vocab = get_vocabulary("byte")
        self.max_length = max_length
        self.answers = {e.text: (e.answer if int(e.id[3:]) % 2 == 0 else "wrong") for e in examples}
        self.closed = {e.text: int(e.id[3:]) % 3 != 0 for e in examples}
        self.seen = []

    def infill_detailed(self, texts, **kwargs):
        self.seen.extend(texts)
        s0, s1 = self.vocab.sentinel_ids[:2]
        out = []
        for t in texts:
            words = list(self.vocab.encode(self.answers[t]))
            ids = [s0, *words, s1] if self.closed[t] else words
            out.append([Infilled([self.answers[t]], ids)])
        return out


def test_each_example_is_a_window_of_its_document_with_an_inner_blank():
    examples = make_examples(DOCS, 20, seed=3)
    assert len(examples) == 20 and len({e.id for e in examples}) == 20
    for e in examples:
        doc = DOCS[int(e.id[3:])]
        assert e.text.count(BLANK) == 1
        before, after = e.text.split(BLANK)
        filled = (before + e.answer + after).split()
        assert len(filled) == WINDOW_WORDS and " ".join(filled) in doc
        assert before.strip() and after.strip()  # never at the window's edges
        assert 1 <= len(e.answer.split()) <= 3
    assert make_examples(DOCS, 20, seed=3) == examples and make_examples(DOCS, 20, seed=4) != examples
    with pytest.raises(ValueError, match="no document has 24 words"):
        make_examples(["too short"], 5)


def test_scores_are_the_share_of_exact_fills(tmp_path):
    examples = make_examples(DOCS, 20)
    right = sum(int(e.id[3:]) % 2 == 0 for e in examples)
    out = evaluate_infilling(_Oracle(examples), examples, out_dir=tmp_path)
    task = out["tasks"]["infilling"]
    assert task["metrics"]["exact_match"] == pytest.approx(100 * right / 20)
    assert out["benchmarks"]["Infilling"]["count"] == 20
    rows = [json.loads(x) for x in (tmp_path / "predictions" / "infilling.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in rows] == [int(e.id[3:]) % 2 == 0 for e in examples]
    # the format row: answers that open with <extra_id_0> and close with <extra_id_1>, whatever the words
    closed = [int(e.id[3:]) % 3 != 0 for e in examples]
    assert [r["closed"] for r in rows] == closed and 0 < sum(closed) < 20
    assert out["benchmarks"]["Infilling-Closed"]["score"] == pytest.approx(100 * sum(closed) / 20)
    assert out["tasks"]["infilling_closed"]["primary_metric"] == "closed"
    assert out["tasks"]["infilling_closed"]["file"] == "infilling"  # the same predictions file


def test_blanks_are_never_only_words_that_squad_normalisation_removes():
    """An answer like "->" or "the" normalises to "", so an empty fill would count as exact: redrawn."""
    from flan_ul2r.evaluation.metrics import squad_normalize

    docs = [" ".join(["the", "->", "a", f"w{d}"] * 8) for d in range(30)]
    examples = make_examples(docs, 30)
    assert len(examples) == 30 and all(squad_normalize(e.answer) for e in examples)


def test_passages_longer_than_the_context_are_skipped_or_refused():
    examples = make_examples(DOCS, 20)
    vocab = get_vocabulary("byte")
    lengths = {e.id: len(vocab.encode(e.text)) for e in examples}
    limit = sorted(lengths.values())[10] + 32  # about half fit with 32 new tokens
    model = _Oracle(examples, max_length=limit)
    out = evaluate_infilling(model, examples, too_long="skip")
    skipped = out["tasks"]["infilling"]["skipped_ids"]
    assert 0 < len(skipped) < 20 and out["tasks"]["infilling"]["count"] == 20 - len(skipped)
    assert all(lengths[i] + 32 > limit - 3 for i in skipped)  # mode token + sentinel: a few ids
    assert not any(e.text in model.seen for e in examples if e.id in skipped)
    with pytest.raises(ValueError, match=r"passage doc\d+: \d+ tokens .* max_length"):
        evaluate_infilling(_Oracle(examples, max_length=limit), examples)
    with pytest.raises(ValueError, match="none of the 20 passages fits"):
        evaluate_infilling(_Oracle(examples, max_length=10), examples, too_long="skip")


def _byte_level_bpe(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"],
                                  show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the tree is traversed from the bottom of the tree"] * 50, trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    return get_vocabulary(f"hf:{tmp_path}")


@pytest.mark.parametrize("kind", ["bpe", "byte"])
def test_a_blank_between_spaces_is_what_span_corruption_made_of_the_missing_words(kind, tmp_path):
    """Span corruption replaces a run of token ids by one sentinel (T5's noise_span_to_unique_sentinel). The
    infill prompt of "... the <extra_id_0> is ..." must be those ids: with a space-carrying BPE the blank
    swallows the missing word's leading space (no stray space token before the sentinel)."""
    from flan_ul2r.decoding.infill import infill_prompt

    vocab = _byte_level_bpe(tmp_path) if kind == "bpe" else get_vocabulary("byte")
    before, missing, after = "the tree is traversed from the", " bottom", " of the tree"
    head, gap = vocab.encode(before), vocab.encode(missing)
    full = vocab.encode(before + missing + after)
    assert full[:len(head)] == head and full[len(head):len(head) + len(gap)] == gap  # the words' own tokens
    corrupted = head + [vocab.sentinel_ids[0]] + full[len(head) + len(gap):]
    ids, sentinels, _ = infill_prompt(vocab, f"{before} {BLANK}{after}", mode=None)
    if kind == "bpe":
        assert ids[1:] == corrupted and sentinels == [vocab.sentinel_ids[0]]
    else:  # bytes: spans start on any byte, the text is kept as written
        assert ids[1:] == vocab.encode(before + " ") + [vocab.sentinel_ids[0]] + vocab.encode(after)
