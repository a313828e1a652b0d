"""End to end on a model that memorised one sentence: a tiny model is trained (Trainer, hand-made
batches) on span-corrupted ([NLU], UL2's R-denoiser layout) and prefix-LM ([S2S]) copies of one sentence;
then infilling, completion, scoring and `flan-ul2r infer` must give back what it memorised."""
import io
import json
import re

import jax
import numpy as np
import pytest

from flan_ul2r import partitioning
from flan_ul2r.api import LoadedModel, load_model
from flan_ul2r.data.core.feature_converter import Packer
from flan_ul2r.data.vocab.vocabularies import ByteVocabulary
from flan_ul2r.main import infer
from flan_ul2r.models import preset
from flan_ul2r.training import checkpoints, optim
from flan_ul2r.training.trainer import Trainer
from tests._xla import optimised_train_steps

SENTENCE = "The quick brown fox jumps over the lazy dog."
VOCAB = ByteVocabulary()
LENGTH = 64
CFG = preset("tiny", vocab_size=VOCAB.vocab_size, d_model=96, d_ff=256, head_dim=24)
STEPS = 300
NEW = dict(max_new_tokens=16)  # prompt + new tokens must fit the 64 tokens the model trained at


WORDS = [(m.start(), m.end()) for m in re.finditer(r"[A-Za-z]+", SENTENCE)]
SPACES = [i for i, c in enumerate(SENTENCE) if c == " "]


def _example(rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """One training example in the layout of flan_ul2r/data/ul2/denoisers.py: [NLU] + the sentence with one or
    two words and a tail (or only the tail after a space) replaced by sentinels -> sentinel + span targets +
    EOS; or
    [S2S] + a prefix -> the rest + EOS. Byte vocabulary: ids are bytes + 3, so offsets are the same."""
    ids = [int(i) for i in VOCAB.encode(SENTENCE)]
    modes, s = VOCAB.mode_token_ids, VOCAB.sentinel_ids
    kind = rng.random()
    if kind < 0.3:
        pivot = int(rng.integers(1, len(ids)))
        return [modes["[S2S]"]] + ids[:pivot], ids[pivot:] + [VOCAB.eos_id]
    if kind < 0.45:
        spans = [(int(rng.choice(SPACES)), len(ids))]  # the tail after a space, leading space included
    else:  # words, then (T5's noise mask ends with noise) the tail after at least one kept byte
        picked = rng.choice(len(WORDS), size=int(rng.integers(1, 3)), replace=False)
        spans = sorted(WORDS[i] for i in picked)
        end = spans[-1][1]
        if end + 1 < len(ids):
            spans.append((int(rng.integers(end + 1, len(ids))), len(ids)))
        else:
            spans[-1] = (spans[-1][0], len(ids))
    inputs, targets, pos = [modes["[NLU]"]], [], 0
    for j, (a, b) in enumerate(spans):
        inputs += ids[pos:a] + [s[j]]
        targets += [s[j]] + ids[a:b]
        pos = b
    return inputs + ids[pos:], targets + [VOCAB.eos_id]


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    mesh = partitioning.make_mesh(data=1, fsdp=1, tensor=1, devices=jax.devices()[:1])
    # decayed to 0 by the last step: at a constant 3e-3 the final weights still moved enough that one
    # blank of the test flipped with the compiler's rounding (XLA flags); decayed, it passes under the
    # three flag sets tried
    trainer = Trainer(CFG, optim.optimizer("adamw", optim.schedule("cosine", 3e-3, decay_steps=STEPS)), mesh,
                      partitioning.rules_for("data_parallel"), z_loss=0.0)
    state = trainer.init_state(0)
    rng = np.random.default_rng(0)
    with optimised_train_steps():  # one program run 300 times: compiled with optimisation (tests/_xla.py)
        for _ in range(STEPS):
            packer = Packer(16, LENGTH, bos_id=VOCAB.bos_id, pack=False)
            for _ in range(16):
                packer.add(*_example(rng))
            state, metrics = trainer.train_step(state, partitioning.global_batch(packer.emit(), mesh))
    assert float(metrics["accuracy"]) > 0.95, float(metrics["accuracy"])
    directory = tmp_path_factory.mktemp("memorised")
    params = jax.tree.map(np.asarray, state.params)
    checkpoints.save_params(directory, params, CFG.to_dict(), {
        "vocab": VOCAB.describe(), "train_info": {"prefix_lm": True, "sequence_length": LENGTH}})
    return load_model(directory), directory


@pytest.mark.slow
def test_infill_returns_the_memorised_spans(memorised):
    m, _ = memorised
    assert isinstance(m, LoadedModel) and m.prefix_lm and m.max_length == LENGTH
    # a passage cut from longer text (no final "."): [NLU] appends the next sentinel, as training inputs end
    assert m.infill("The quick brown <extra_id_0> jumps over the lazy dog", **NEW) == ["fox"]
    assert m.infill("The <extra_id_0> brown fox jumps over the <extra_id_1> dog", **NEW) == ["quick", "lazy"]
    # [NLU] without a sentinel: U-PaLM appends <extra_id_0>, the model writes the end of the sentence
    assert m.infill("The quick brown fox jumps over the", mode="nlu", **NEW) == [" lazy dog."]
    assert m.infill_batch(["The quick <extra_id_0> fox jumps over the lazy dog",
                           "The quick brown fox <extra_id_0> over <extra_id_1> lazy dog"], **NEW) == [
        [["brown"]], [["jumps", "the"]]]


@pytest.mark.slow
def test_complete_continues_the_prefix(memorised):
    m, _ = memorised
    assert m.complete(["The quick brown", "The quick brown fox jumps"], mode="s2s", max_new_tokens=30) == [
        [" fox jumps over the lazy dog."], [" over the lazy dog."]]
    assert m.complete(["The quick brown"], mode="s2s", max_new_tokens=30, stop_sequences=["over"]) == [
        [" fox jumps "]]


@pytest.mark.slow
def test_scoring_ranks_the_memorised_span_first(memorised):
    m, _ = memorised
    s0, s1 = VOCAB.sentinel_ids[:2]
    context = m.encode_prompt("The quick brown <extra_id_0> jumps over the lazy dog", mode="nlu") + [s1]
    choices = ["fox", "cat", "dog", "fix", "foxes"]
    scores = m.score([context] * len(choices), [[s0] + m.tokenize(c) + [s1] for c in choices])
    assert int(np.argmax([s for s, _ in scores])) == 0
    assert [g for _, g in scores] == [True, False, False, False, False]
    # the same number from one plain forward pass with the context as the bidirectional prefix
    target = [s0] + m.tokenize("fox") + [s1]
    logits = m.logits([context + target[:-1]], prefix_length=len(context))[0]
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    want = sum(logp[len(context) - 1 + j, t] for j, t in enumerate(target))
    np.testing.assert_allclose(scores[0][0], want, rtol=1e-5, atol=1e-5)  # float32 log-softmax sums


@pytest.mark.slow
def test_infer_cli_prints_json_lines(memorised, tmp_path, capsys, monkeypatch):
    _, directory = memorised
    prompts = tmp_path / "blanks.jsonl"
    prompts.write_text(json.dumps({"prompt": "The <extra_id_0> brown fox jumps over the <extra_id_1> dog"})
                       + "\n\n" + json.dumps({"prompt": "The quick brown fox jumps over the"}) + "\n")
    assert infer.main(["--checkpoint", str(directory), "--infill", "--input", str(prompts),
                       "--max_new_tokens=16"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["spans"] for r in rows] == [[["quick", "lazy"]], [[" lazy dog."]]]
    assert rows[0]["completions"] == [SENTENCE[:-1]] and rows[1]["completions"] == [SENTENCE]
    # BOS, [NLU], two sentinels for the 24 bytes of their names, and the appended <extra_id_2>
    assert rows[0]["mode"] == "nlu" and rows[0]["prompt_tokens"] == len(rows[0]["prompt"].encode()) - 24 + 5
    # the blanks' two sentinels and the <extra_id_2> that ended the answer (sentinels count, EOS not)
    assert rows[0]["completion_tokens"] == [len("quicklazy") + 3]
    monkeypatch.setattr("sys.stdin", io.StringIO("The quick brown\nThe quick brown fox jumps\n"))
    assert infer.main(["--checkpoint", str(directory), "--mode", "s2s", "--max_new_tokens", "30"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["completions"] for r in rows] == [[" fox jumps over the lazy dog."], [" over the lazy dog."]]
    assert rows[0]["completion_tokens"] == [len(" fox jumps over the lazy dog.")]


@pytest.mark.slow
def test_infer_cli_errors_and_help(memorised, tmp_path, capsys):
    _, directory = memorised
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt field"}\n')
    assert infer.main(["--checkpoint", str(directory), "--input", str(bad)]) == 1
    assert f"{bad}:2: expected an object with a string field 'prompt'" in capsys.readouterr().err
    too_long = tmp_path / "long.txt"
    too_long.write_text("x" * 70 + "\n")
    assert infer.main(["--checkpoint", str(directory), "--input", str(too_long), "--max_new_tokens=4"]) == 1
    err = capsys.readouterr().err
    assert "prompt 0: 71 tokens + max_new_tokens 4 = 75 > the model's max_length 64" in err
    assert infer.main(["--checkpoint", str(tmp_path / "nowhere"), "--input", str(too_long)]) == 1
    assert "nowhere" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        infer.main(["--help"])
    out = capsys.readouterr().out
    assert "--checkpoint" in out and "--infill" in out and "examples:" in out
