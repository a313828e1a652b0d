"""Prefix-LM packing vs a brute-force python packer, and the attention / loss properties it must give."""
from __future__ import annotations

import numpy as np
import pytest

from flan_ul2r.data.core.feature_converter import FEATURES, Packer, convert_examples, trim_example

BOS = 7


def brute_force(examples, batch_size, length, pack=True):
    """Row-by-row python reference of seqio PrefixLM semantics with greedy sequential packing."""
    rows = [[] for _ in range(batch_size)]
    r, used = 0, 0
    for inputs, targets in examples:
        inputs, targets = list(inputs), list(targets)
        if len(inputs) + len(targets) > length:
            targets = targets[:length]
            inputs = inputs[len(inputs) - (length - len(targets)):] if length > len(targets) else []
        fill = sum(len(i) + len(t) for i, t in rows[r])
        if rows[r] and (not pack or fill + len(inputs) + len(targets) > length):
            if r + 1 == batch_size:
                break
            r += 1
        rows[r].append((inputs, targets))
        used += 1
    out = {f: np.zeros((batch_size, length), np.float32 if "loss" in f else np.int32) for f in FEATURES}
    for b, row in enumerate(rows):
        p = 0
        for seg, (inputs, targets) in enumerate(row, start=1):
            seq = inputs + targets
            for j, tok in enumerate(seq):
                out["decoder_target_tokens"][b, p] = tok
                out["decoder_input_tokens"][b, p] = BOS if j == 0 else seq[j - 1]
                out["decoder_loss_weights"][b, p] = 1.0 if j >= len(inputs) else 0.0
                out["decoder_segment_ids"][b, p] = seg
                out["decoder_positions"][b, p] = j
                out["decoder_causal_attention"][b, p] = 1 if j <= len(inputs) else 0
                p += 1
    return out, used, rows


def random_examples(n, seed, max_in=40, max_t=30):
    rng = np.random.default_rng(seed)
    return [(rng.integers(10, 99, rng.integers(0, max_in)), rng.integers(10, 99, rng.integers(1, max_t)))
            for _ in range(n)]


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(pack, seed):
    examples = random_examples(30, seed) + [(np.arange(10, 90), np.arange(10, 50))]  # one over-long
    batch, used = convert_examples(examples, 4, 64, BOS, pack)
    ref, ref_used, _ = brute_force(examples, 4, 64, pack)
    assert used == ref_used
    for f in FEATURES:
        np.testing.assert_array_equal(batch[f], ref[f], err_msg=f)
    assert batch["decoder_loss_weights"].dtype == np.float32


def attention(batch, b):
    """The model's rule (docs/ARCHITECTURE.md section 1) built from the features alone."""
    seg, causal = batch["decoder_segment_ids"][b], batch["decoder_causal_attention"][b]
    q, k = np.arange(len(seg))[:, None], np.arange(len(seg))[None, :]
    same = (seg[:, None] == seg[None, :]) & (seg[:, None] != 0)
    return same & ((k <= q) | ((causal[:, None] == 1) & (causal[None, :] == 1)))


def test_no_attention_across_examples_and_no_loss_on_inputs():
    examples = random_examples(60, 11)
    batch, used = convert_examples(examples, 3, 128, BOS)
    _, _, rows = brute_force(examples, 3, 128)
    for b, row in enumerate(rows):
        att, p = attention(batch, b), 0
        for inputs, targets in row:
            n_in, end = len(inputs), p + len(inputs) + len(targets)
            span = np.zeros(128, bool)
            span[p:end] = True
            assert not att[p:end][:, ~span].any(), "attends outside its own example"
            assert not att[~span][:, span].any()
            assert (batch["decoder_loss_weights"][b, p:p + n_in] == 0).all()
            assert (batch["decoder_loss_weights"][b, p + n_in:end] == 1).all()
            # bidirectional exactly over inputs + 1 position; targets after it are causal
            assert att[p, p:p + n_in + 1].all() if n_in else True
            if end - p > n_in + 1:
                assert not att[p + n_in + 1, p + n_in + 2:end].any()
                assert not att[p, p + n_in + 1].any()
            p = end
        assert (batch["decoder_loss_weights"][b, p:] == 0).all()


def test_packer_refuses_when_full_and_keeps_example_for_next_batch():
    packer = Packer(2, 10, BOS)
    assert packer.add([1, 2, 3], [4, 5]) and packer.add([1], [2, 3]) and packer.add([1, 2, 3, 4], [5, 6])
    assert not packer.add([9], [9, 9, 9, 9])  # row 0 has 8 tokens... row 1 has 6; no row left
    batch = packer.emit()
    assert batch["decoder_segment_ids"].tolist() == [[1] * 5 + [2] * 3 + [0] * 2, [1] * 6 + [0] * 4]
    assert packer.num_examples == 0


def test_trim_policy():
    i, t = trim_example(np.arange(10), np.arange(100, 104), 7)
    assert i.tolist() == [7, 8, 9] and t.tolist() == [100, 101, 102, 103]
    i, t = trim_example(np.arange(3), np.arange(100, 120), 7)
    assert i.tolist() == [] and t.tolist() == list(range(100, 107))


def test_bad_sizes():
    with pytest.raises(ValueError, match="batch_size=0"):
        Packer(0, 10)


def seqio_rows(examples, length, pack):
    """seqio's own PrefixLMFeatureConverter (the reference semantics) on the same examples."""
    import seqio
    import tensorflow as tf

    spec = tf.TensorSpec([None], tf.int32)
    ds = tf.data.Dataset.from_generator(
        lambda: ({"inputs": np.int32(i), "targets": np.int32(t)} for i, t in examples),
        output_signature={"inputs": spec, "targets": spec})
    half = {"inputs": length // 2, "targets": length // 2}
    return list(seqio.PrefixLMFeatureConverter(pack=pack)(ds, half).as_numpy_iterator())


@pytest.mark.slow
@pytest.mark.parametrize("pack", [True, False])
def test_matches_seqio_prefix_lm_converter(pack):
    examples = random_examples(25, 3, max_in=30, max_t=30)  # inputs, targets each <= length / 2
    ref = seqio_rows(examples, 64, pack)
    batch, used = convert_examples(examples, len(ref), 64, 0, pack)
    assert used == len(examples)
    for r, row in enumerate(ref):
        seg = batch["decoder_segment_ids"][r]
        for f, v in row.items():
            ours = batch[f][r]
            if f == "decoder_input_tokens" and not pack:  # seqio shifts the last token into padding
                ours, v = ours[seg > 0], v[seg > 0]
            np.testing.assert_array_equal(ours, v, err_msg=f"row {r} {f}")
