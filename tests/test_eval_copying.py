"""The copying check (evaluation/copying.py): held-out passages read twice, scored by teacher-forced top-1 on
the repeat. Two brute-force models with known answers: one that looks back (an induction head written in
numpy) and one that never does."""
import json

import numpy as np
import pytest

from flan_ul2r.evaluation import intervals
from flan_ul2r.evaluation.copying import BENCHMARK, METRIC, evaluate_copying, passages
from flan_ul2r.pipeline.evidence import cell
from tests._xla import optimised_train_steps

BOS = 1
# Documents of distinct words: each word is one token (id >= 2), none repeats inside a document.
DOCS = [" ".join(f"d{d}w{i}" for i in range(20 + 7 * d)) for d in range(6)] + ["too few words"]


class _Model:
    """A word-level vocabulary, BOS = 1; `logits` is overridden by each kind of model below."""

    def __init__(self, max_length=64):
        self.max_length = max_length
        self.ids: dict[str, int] = {}
        self.calls = 0

    def tokenize(self, text):
        return [self.ids.setdefault(w, len(self.ids) + 2) for w in text.split()]

    def encode_prompt(self, text):
        return [BOS, *self.tokenize(text)]

    def _one_hot(self, predictions, vocab):
        out = np.zeros((len(predictions), vocab), np.float32)
        out[np.arange(len(predictions)), predictions] = 1.0
        return out

    def logits(self, batch):
        self.calls += 1
        assert len({len(row) for row in batch}) == 1  # one passage length per call
        vocab = max(max(row) for row in batch) + 1
        return np.stack([self._one_hot(self.predict(row), vocab) for row in batch])


class _Inductor(_Model):
    """Predicts the token that followed the latest earlier occurrence of the current token, else 0 (never a
    word): an induction head by brute force."""

    def predict(self, row):
        out = []
        for i, t in enumerate(row):
            earlier = [j for j in range(i) if row[j] == t]
            out.append(row[earlier[-1] + 1] if earlier else 0)
        return out


class _Fixed(_Model):
    """Always predicts the same token: it never looks back."""

    token = 5

    def predict(self, row):
        return [self.token] * len(row)


def test_passages_are_consecutive_windows_of_exactly_the_length():
    model = _Inductor()
    got = passages(model, DOCS, 10, limit=100)
    # documents of 20, 27, 34, 41, 48, 55 words: 2 + 2 + 3 + 4 + 4 + 5 windows; "too few words" gives none
    assert [name for name, _ in got][:5] == ["doc0.0", "doc0.1", "doc1.0", "doc1.1", "doc2.0"]
    assert len(got) == 20 and all(len(ids) == 10 for _, ids in got)
    assert got[3][1] == model.tokenize(" ".join(DOCS[1].split()[10:20]))
    assert len(passages(model, DOCS, 10, limit=7)) == 7


def test_a_model_that_looks_back_copies_every_repeated_token(tmp_path):
    model = _Inductor(max_length=64)
    out = evaluate_copying(model, DOCS, out_dir=tmp_path, batch_size=4)
    bench = out["benchmarks"][BENCHMARK]
    # (64 - 1 BOS) // 2 = 31 tokens per passage: 0 + 0 + 1 + 1 + 1 + 1 windows of 31 words
    assert bench["passage_tokens"] == 31 and bench["n"] == 4 and model.calls == 1
    assert bench["score"] == 100.0 and (bench["ci_low"], bench["ci_high"]) == (100.0, 100.0)
    assert bench["first_read_accuracy"] == 0.0  # distinct words: nothing earlier to copy on the first read
    rows = [json.loads(x) for x in (tmp_path / "predictions" / "copying.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["doc2.0", "doc3.0", "doc4.0", "doc5.0"]
    assert all(r[METRIC] == 1.0 and r["tokens"] == 31 for r in rows)


def test_a_model_that_never_looks_back_scores_its_first_read_on_the_repeat():
    model = _Fixed(max_length=21)  # 10 tokens per passage
    token_5_word = "d0w3"  # the 4th distinct word tokenized gets id 5
    docs = [" ".join(f"x{i}" for i in range(3)) + f" {token_5_word} " + " ".join(f"y{i}" for i in range(26))]
    model.tokenize(docs[0])
    assert model.ids[token_5_word] == 5
    out = evaluate_copying(model, docs, batch_size=2)
    # By hand: passage 0 is tokens 2..11 (ids), with id 5 at its 4th place; a passage's score is the share
    # of its tokens 2..10 that are 5, on the repeat and on the first read alike.
    per_passage = [1 / 9, 0.0, 0.0]
    bench = out["benchmarks"][BENCHMARK]
    assert bench["n"] == 3 and bench["score"] == pytest.approx(100 * np.mean(per_passage))
    assert bench["first_read_accuracy"] == pytest.approx(bench["score"])
    low, high = intervals.bootstrap([100 * np.asarray(per_passage)], "micro")
    assert (bench["ci_low"], bench["ci_high"]) == (low, high)
    task = out["tasks"]["copying"]  # both metrics carry an interval (the report's task rows)
    assert task["intervals"] == {METRIC: [low, high], "first_read_accuracy": [low, high]}


def test_the_report_cell_of_a_graded_score_is_the_bootstrap_not_wilson():
    """Per-passage accuracies between 0 and 100 are not right/wrong answers: a Wilson interval on them would
    be wrong. The report's cell must give the interval that evaluate_copying gave."""
    values = {"copying": {f"doc{i}": v for i, v in enumerate([10.0, 55.0, 30.0, 80.0, 45.0])}}
    got = cell(values, {"metric": METRIC, "aggregate": "micro"})
    low, high = intervals.bootstrap([np.asarray([10.0, 55.0, 30.0, 80.0, 45.0])], "micro")
    assert (got["score"], got["n"], got["ci_low"], got["ci_high"]) == (44.0, 5, low, high)
    assert (got["ci_low"], got["ci_high"]) != intervals.wilson_percent(2.2, 5)


def test_no_passage_to_repeat_is_an_error_that_names_the_check():
    with pytest.raises(ValueError, match="copying: no held-out document has 31 tokens"):
        evaluate_copying(_Inductor(max_length=64), ["too few words"])
    with pytest.raises(ValueError, match="copying: the model's max_length 4 leaves no room"):
        evaluate_copying(_Inductor(max_length=4), DOCS)


def _copy_rows(rng, rows, length):
    """Training rows `BOS s s` of printable-ASCII byte ids (35..129), loss on every target token."""
    s = rng.integers(35, 130, size=(rows, length))
    target = np.concatenate([s, s], 1).astype(np.int32)
    inputs = np.concatenate([np.zeros((rows, 1), np.int32), target[:, :-1]], 1)  # BOS (id 0) first
    return {"decoder_target_tokens": target, "decoder_input_tokens": inputs,
            "decoder_loss_weights": np.ones(target.shape, np.float32),
            "decoder_segment_ids": np.ones_like(target),
            "decoder_positions": np.tile(np.arange(target.shape[1], dtype=np.int32), (rows, 1))}


@pytest.mark.slow
def test_a_model_trained_to_copy_scores_high_and_the_untrained_one_does_not():
    """The row on a real model: our transformer, trained only on `BOS s s` rows of random characters, learns
    to copy (every copy sits one string length back, so a head that reads a fixed distance back suffices:
    the row checks the reading of a model that copies, not how hard copying is to learn); evaluate_copying
    on random held-out strings of the same length then scores it near
    100 and far above its first read, and scores the same model before training near 0."""
    import jax

    from flan_ul2r import partitioning
    from flan_ul2r.data.vocab.vocabularies import get_vocabulary
    from flan_ul2r.decoding.loaded_model import LoadedModel
    from flan_ul2r.models.config import preset
    from flan_ul2r.training import optim
    from flan_ul2r.training.trainer import Trainer

    length, rng = 24, np.random.default_rng(0)
    cfg = preset("tiny", vocab_size=362, num_layers=2, d_model=64, num_heads=4, num_kv_heads=4, head_dim=16,
                 d_ff=128)
    mesh = partitioning.make_mesh(data=1, devices=jax.devices()[:1])
    trainer = Trainer(cfg, optim.optimizer("adamw", optim.schedule("constant", 3e-3)), mesh,
                      partitioning.rules_for("data_parallel"))
    state = trainer.init_state(0)
    docs = ["".join(chr(c) for c in rng.integers(32, 127, size=length)) for _ in range(24)]

    def score(params):
        model = LoadedModel(cfg, jax.device_get(params), get_vocabulary("byte"), max_length=2 * length + 1)
        return evaluate_copying(model, docs)["benchmarks"][BENCHMARK]

    before = score(state.params)
    with optimised_train_steps():  # one program run 300 times: compiled with optimisation (tests/_xla.py)
        for _ in range(300):  # the copy forms between steps 100 and 200 (seed 0)
            state, _ = trainer.train_step(state, partitioning.global_batch(_copy_rows(rng, 16, length), mesh))
    after = score(state.params)
    assert before["n"] == after["n"] == 24 and after["passage_tokens"] == length
    assert before["score"] < 20, before
    assert after["score"] > 80 and after["ci_low"] > after["first_read_accuracy"] + 50, after
