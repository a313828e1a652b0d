"""The seekable training loader: resume without replay, seeds, shards, mixture shares."""
from __future__ import annotations

import json
from collections import Counter
from itertools import islice

import numpy as np
import pytest

from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.ul2.cached_tasks import array_corpus, register_lm_task, register_ul2r_mixture
from flan_ul2r.data.ul2.denoisers import UL2R
from tests._denoise_toy import VOCAB, reconstruct, toy_documents

LENGTHS = {"inputs": 128, "targets": 128}


@pytest.fixture(scope="module")
def names():
    corpus = array_corpus(toy_documents())
    register_ul2r_mixture("loadertoy", corpus, VOCAB, UL2R)
    # 13 documents of 40 tokens, cut per document -> exactly 13 chunks of the lm task at length 256 (odd
    # on purpose; none of the 13 is in the validation split)
    small = array_corpus([np.full(40, 10 + i, np.int32) for i in range(13)])
    register_lm_task("loadertoy_lm", small, VOCAB, concatenate=False)
    return "loadertoy", "loadertoy_lm"


def batches(it, n):
    return [next(it) for _ in range(n)]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("shard", [(0, 1), (1, 2)])
def test_resume_gives_exactly_the_uninterrupted_batches(names, shard):
    s, n = shard
    full = batches(make_train_iterator(names[0], LENGTHS, 3, seed=5, shard_index=s, num_shards=n), 7)
    it = make_train_iterator(names[0], LENGTHS, 3, seed=5, shard_index=s, num_shards=n)
    first = batches(it, 3)
    state = json.loads(json.dumps(it.state()))  # what a checkpoint stores
    assert state["draw"] > 0 and sum(state["cursors"].values()) > 0
    resumed = make_train_iterator(names[0], LENGTHS, 3, seed=5, shard_index=s, num_shards=n, state=state)
    assert_same(first + batches(resumed, 4), full)


@pytest.mark.slow
def test_seed_determinism(names):
    a = batches(make_train_iterator(names[0], LENGTHS, 2, seed=1), 2)
    b = batches(make_train_iterator(names[0], LENGTHS, 2, seed=1), 2)
    c = batches(make_train_iterator(names[0], LENGTHS, 2, seed=2), 2)
    assert_same(a, b)
    assert any((x["decoder_target_tokens"] != y["decoder_target_tokens"]).any() for x, y in zip(a, c))


def test_shards_split_an_epoch_without_overlap(names):
    def chunks(shard, num):
        it = make_train_iterator(names[1], LENGTHS, 1, seed=3, shard_index=shard, num_shards=num, pack=False)
        return [tuple(ex["targets"][:-1].tolist()) for ex in islice(it.examples(), 7 - shard)]
    together = chunks(0, 2) + chunks(1, 2)
    assert sorted(together) == sorted(tuple([10 + i] * 40) for i in range(13)), "each chunk exactly once"
    single = [tuple(ex["targets"][:-1].tolist()) for ex in islice(
        make_train_iterator(names[1], LENGTHS, 1, seed=3).examples(), 26)]
    assert sorted(single[:13]) == sorted(single[13:]), "one epoch = every record once"
    assert single[:13] != single[13:], "a new permutation every epoch"


@pytest.mark.slow
def test_mixture_shares_and_examples(names):
    it = make_train_iterator(names[0], LENGTHS, 1, seed=9, with_strings=True)
    rows = list(islice(it.examples(), 8000))
    counts = Counter(r["denoiser"].decode() for r in rows)
    for d in UL2R:
        assert abs(counts[d.name] / len(rows) - d.weight) < 0.02, counts
    for r in rows[:200]:
        reconstruct(r["inputs"], r["targets"])
        assert len(r["inputs"]) + len(r["targets"]) <= 256  # raw_length: never needs trimming


def test_packed_batches_fill_rows(names):
    b = next(make_train_iterator(names[0], LENGTHS, 4, seed=0))
    assert b["decoder_target_tokens"].shape == (4, 256)
    assert (b["decoder_segment_ids"] > 0).mean() > 0.6
    assert (b["decoder_loss_weights"] * (b["decoder_segment_ids"] == 0)).sum() == 0


def test_bad_state_and_names(names):
    with pytest.raises(ValueError, match="does not belong"):
        make_train_iterator(names[0], LENGTHS, 1, seed=0, state={"draw": 0, "cursors": {"other": 0}})
    with pytest.raises(ValueError, match="MIXTURE_OR_TASK_NAME='nope' is not a registered task or mixture"):
        make_train_iterator("nope", LENGTHS, 1, seed=0)
    with pytest.raises(ValueError, match="split='test'"):
        make_train_iterator(names[0], LENGTHS, 1, seed=0, split="test")


@pytest.mark.slow
def test_each_example_is_the_tasks_seekable_example(names):
    import tensorflow as tf

    from flan_ul2r.data.core.loader import task_seed
    from flan_ul2r.data.core.seekable import seekable_example
    from tests._library_helpers import get_seekable_task

    it = make_train_iterator(names[0], LENGTHS, 1, seed=6, shard_index=1, num_shards=3, with_strings=True)
    seen: Counter = Counter()
    for ex in islice(it.examples(), 12):
        name = ex["task"].decode()
        order = [t.name for t in it.tasks]
        assert int(ex["draw"]) % 3 == 1 and ex["cursors"][order.index(name)] == seen[name]
        want = seekable_example(get_seekable_task(name), tf.constant(seen[name] * 3 + 1, tf.int64),
                                              task_seed(6, name), "train", LENGTHS)
        assert ex["targets"].tolist() == want["targets"].numpy().tolist()
        assert ex["inputs"].tolist() == want["inputs"].numpy().tolist()
        seen[name] += 1


def test_block_tasks_give_the_per_example_tasks_examples():
    """A task with `preprocess_batch` (examples made a block at a time) yields exactly the examples of
    the same task without it (one `preprocess` per example), in the same order, sharded and resumed."""
    import tensorflow as tf

    from flan_ul2r.data.core.seekable import SeekableTask, register_seekable_task

    def fetch(index, split, seqlen):
        return {"index": tf.cast(index, tf.int32)}

    def preprocess(features, seed, seqlen):  # targets: (index % 5 + 1) copies of index + 3, then a seeded id
        i = features["index"]
        extra = tf.cast(tf.math.floormod(seed[1], 7), tf.int32) + 3
        body = tf.fill([i % 5 + 1], i + 3)
        return {"inputs": tf.zeros([0], tf.int32), "targets": tf.concat([body, [extra]], 0)}

    def preprocess_batch(features, seeds, seqlen):  # the same, vectorized
        i = features["index"]
        body = tf.RaggedTensor.from_row_lengths(tf.repeat(i + 3, i % 5 + 1), tf.cast(i % 5 + 1, tf.int64))
        extra = tf.cast(tf.math.floormod(seeds[:, 1], 7), tf.int32)[:, None] + 3
        empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros_like(i, tf.int64))
        extra = tf.RaggedTensor.from_tensor(extra, row_splits_dtype=tf.int64)
        return {"inputs": empty, "targets": tf.concat([body, extra], axis=1)}

    n = lambda split, seqlen: 97
    kw = dict(seed=4, shard_index=1, num_shards=2, pack=False)
    register_seekable_task(SeekableTask("blocktoy", VOCAB, n, fetch, preprocess))
    one = [ex["targets"].tolist()
           for ex in islice(make_train_iterator("blocktoy", LENGTHS, 1, **kw).examples(), 300)]
    register_seekable_task(SeekableTask("blocktoy", VOCAB, n, fetch, preprocess,
                                      preprocess_batch=preprocess_batch))
    block = make_train_iterator("blocktoy", LENGTHS, 1, **kw)
    assert [ex["targets"].tolist() for ex in islice(block.examples(), 300)] == one
    first = make_train_iterator("blocktoy", LENGTHS, 2, **kw)
    next(first)
    resumed = make_train_iterator("blocktoy", LENGTHS, 2, state=first.state(), **kw)
    assert [ex["targets"].tolist() for ex in islice(resumed.examples(), 5)] == one[2:7]


def test_a_closed_iterator_says_so(names):
    it = make_train_iterator(names[0], LENGTHS, 1, seed=0)
    next(it)
    it.close()
    with pytest.raises(ValueError, match="this TrainIterator is closed"):
        next(it)


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_script_holding_a_flan_iterator_exits():
    """A script whose module-level iterator is still open at exit ends normally. Freed only during
    interpreter finalization, the Flan pipeline (Python renderers inside tf.data's parallel maps) hung the
    process for good; the loader's exit hook closes it first."""
    import subprocess
    import sys

    code = ("import flan_ul2r.tasks.flan\n"
            "from flan_ul2r.data.core.loader import make_train_iterator\n"
            "it = make_train_iterator('flan', {'inputs': 96, 'targets': 32}, 2, seed=0)\n"
            "print(next(it)['decoder_target_tokens'].shape, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "(2, 128)", (out.stdout, out.stderr[-2000:])
