"""Plain seqio tasks (the user's own) through the loader and inspect; the built-ins' seqio view; bad input."""
from __future__ import annotations

import json
import sys
from itertools import islice

import numpy as np
import pytest
import seqio

from flan_ul2r.cli import main
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.ul2.cached_tasks import array_corpus, register_ul2r_mixture
from flan_ul2r.data.ul2.denoisers import UL2R, raw_length
from flan_ul2r.data.vocab.vocabularies import get_vocabulary
from flan_ul2r.gin_utils import import_task_modules
from tests._user_tasks import corpus_lines, qa_lines, write_user_module

LENGTHS = {"inputs": 64, "targets": 64}
VOCAB = get_vocabulary("byte")


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    import flan_ul2r.tasks

    flan_ul2r.tasks.import_all()  # the built-ins the user's mixture mixes with
    folder = tmp_path_factory.mktemp("project")
    write_user_module(folder, "my_tasks")
    sys.path.insert(0, str(folder))
    import_task_modules("my_tasks")
    yield folder
    sys.path.remove(str(folder))


def batches(it, n):
    return [next(it) for _ in range(n)]


def test_a_submixture_contributes_its_tasks_at_its_rates(user_module):
    from flan_ul2r.data.core.registry import leaf_tasks
    from flan_ul2r.data.ul2.denoisers import UL2R

    rates = {t.name: r for t, r in leaf_tasks("my_mix_ul2r")}
    assert rates == pytest.approx({"my_prefix_lm": 0.5, **{f"ul2r_{d.name}": 0.5 * d.weight for d in UL2R}})


def test_plain_task_examples_are_the_files_lines(user_module):
    pairs = {tuple(line.split("\t")) for line in qa_lines()}
    it = make_train_iterator("my_prefix_lm", LENGTHS, 2, seed=0, with_strings=True)
    assert it.mode == "seqio"
    for ex in islice(it.examples(), 40):
        assert ex["inputs"][-1] == VOCAB.eos_id and ex["targets"][-1] == VOCAB.eos_id  # append_eos_after_trim
        q, a = VOCAB.decode(ex["inputs"][:-1]), VOCAB.decode(ex["targets"][:-1])
        assert (q, a) in pairs
        assert ex["task"] == b"my_prefix_lm" and ex["inputs_pretokenized"].decode() == q


@pytest.mark.slow
@pytest.mark.parametrize("shard", [(0, 1), (1, 2)])
def test_resume_on_the_seqio_path_gives_the_uninterrupted_batches(user_module, shard):
    s, n = shard
    full = batches(make_train_iterator("my_mix", LENGTHS, 3, seed=5, shard_index=s, num_shards=n), 6)
    it = make_train_iterator("my_mix", LENGTHS, 3, seed=5, shard_index=s, num_shards=n)
    first = batches(it, 3)
    state = json.loads(json.dumps(it.state()))  # what a checkpoint stores
    assert state["mode"] == "seqio" and min(state["cursors"].values()) > 0
    assert set(state["fingerprints"]) == {"my_prefix_lm", "ul2r_s"}
    resumed = make_train_iterator("my_mix", LENGTHS, 3, seed=5, shard_index=s, num_shards=n, state=state)
    for a, b in zip(first + batches(resumed, 3), full):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_hosts_read_disjoint_examples(user_module):
    def seen(shard):
        it = make_train_iterator("my_prefix_lm", LENGTHS, 1, seed=2, shard_index=shard, num_shards=2)
        return {tuple(ex["inputs"].tolist() + ex["targets"].tolist()) for ex in islice(it.examples(), 150)}

    a, b = seen(0), seen(1)
    assert len(a) > 50 and len(b) > 50 and not a & b  # 400 distinct lines, each host reads its half


@pytest.mark.slow
def test_resume_check_names_a_task_that_does_not_reproduce(user_module):
    it = make_train_iterator("my_mix", LENGTHS, 2, seed=1)
    batches(it, 2)
    state = it.state()
    state["fingerprints"]["my_prefix_lm"] += 1  # as if the task's data or randomness had changed
    resumed = make_train_iterator("my_mix", LENGTHS, 2, seed=1, state=state)
    with pytest.raises(ValueError, match="resume check failed for task 'my_prefix_lm'"):
        batches(resumed, 2)


def test_user_ul2_denoise_task_gives_the_builtin_examples(user_module):
    docs = [VOCAB.encode(line) for line in corpus_lines()]
    register_ul2r_mixture("usercheck", array_corpus(docs), VOCAB, UL2R, splits=("all",))
    for d in (UL2R[0], UL2R[2]):  # S and X (mu=32)
        mine = seqio.get_mixture_or_task(f"my_ul2r_{d.name}").get_dataset(
            LENGTHS, split="all", shuffle=False, seed=11, trim_output_features=False)
        builtin = seqio.get_mixture_or_task(f"usercheck_{d.name}").get_dataset(
            LENGTHS, split="all", shuffle=False, seed=11)
        for a, b in zip(mine.take(6).as_numpy_iterator(), builtin.take(6).as_numpy_iterator()):
            assert a["inputs"].tolist() == b["inputs"].tolist()
            assert a["targets"].tolist() == b["targets"].tolist()


def raw_chunk_length(ex, vocab) -> int:
    """Raw tokens an example was made from, counted from its output: drop the mode token and EOS, and each
    span's two sentinels (one in the inputs, one in the targets)."""
    sentinels = set(vocab.sentinel_ids)
    spans = sum(int(t) in sentinels for t in ex["targets"])
    return len(ex["inputs"]) + len(ex["targets"]) - 2 - 2 * spans


@pytest.mark.slow
@pytest.mark.parametrize("total", [512, 2048])
def test_concatenation_fills_at_least_95_percent_of_examples(user_module, total):
    lengths = {"inputs": total // 2, "targets": total // 2}
    raw = {d.name: raw_length(d, total) for d in UL2R}
    for name in ("ul2r", "my_ul2r"):  # built-in (default corpus, seekable) and the user's preprocessor
        split = "train" if name == "ul2r" else "all"
        it = make_train_iterator(name, lengths, 1, seed=0, split=split, with_strings=True)
        rows = list(islice(it.examples(), 120))
        full = [raw_chunk_length(ex, VOCAB) == raw[ex["denoiser"].decode()] for ex in rows]
        assert np.mean(full) >= 0.95, (name, total, np.mean(full))


@pytest.mark.slow
def test_get_dataset_works_for_every_builtin_task(user_module):
    # Every UL2R / UL2 / lm task on its own; the Flan tasks through their mixtures (seqio's
    # Mixture.get_dataset calls get_dataset of each of its tasks).
    names = ["ul2r", "lm", "flan", "flan_heldout"] + [
        t.name for m in ("ul2r", "ul2") for t in seqio.get_mixture_or_task(m).tasks]
    for name in names:
        ds = seqio.get_mixture_or_task(name).get_dataset({"inputs": 128, "targets": 128}, split="train",
                                                         shuffle=False, seed=0)
        ex = next(iter(ds))
        assert ex["targets"].shape[0] > 0 and ex["inputs"].shape[0] + ex["targets"].shape[0] <= 256, name


def run_inspect(capsys, *args):
    code = main(["inspect", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_inspect_prints_a_plain_task_and_a_mixture_with_a_builtin(user_module, capsys):
    code, out, _ = run_inspect(capsys, "--module", "my_tasks", "--task", "my_mix", "--num", "12",
                               "--sequence_length", "128")
    rows = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and {r["task"] for r in rows} == {"my_prefix_lm", "ul2r_s"}
    for r in rows:
        assert r["targets_text"].endswith("</s>") and len(r["inputs"]) + len(r["targets"]) <= 128


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--task", "my_no_targets"], r"task 'my_no_targets'.*lack 'targets'"),
    (["--task", "my_bad_mix"], r"vocabulary of feature '\w+' of task 'my_(other_vocab|prefix_lm)"),
    (["--task", "my_typo"], r"--task='my_typo' is not a registered task or mixture"),
])
def test_bad_tasks_are_named(user_module, capsys, args, message):
    import re

    code, _, err = run_inspect(capsys, "--module", "my_tasks", *args)
    assert code == 2 and re.search(message, err), err


@pytest.fixture()
def clean_gin():
    import gin

    with gin.unlock_config():
        gin.clear_config()
    yield
    with gin.unlock_config():
        gin.clear_config()


@pytest.mark.slow
def test_unknown_module_is_named(capsys, clean_gin, tmp_path):
    code, _, err = run_inspect(capsys, "--module", "no_such_tasks_module", "--task", "ul2r")
    assert code == 2 and "--module='no_such_tasks_module': no module named 'no_such_tasks_module'" in err
    code, _, err = run_inspect(capsys, "--gin.MIXTURE_OR_TASK_MODULE=no_such_tasks_module", "--task", "ul2r")
    assert code == 2 and "MIXTURE_OR_TASK_MODULE='no_such_tasks_module'" in err


@pytest.mark.slow
def test_train_names_an_unknown_module(capsys, clean_gin, tmp_path):
    code = main(["train", "--gin_file=gin/runs/ul2r.gin", "--gin_file=gin/models/tiny.gin",
                 f"--gin.MODEL_DIR={tmp_path}", "--gin.TRAIN_STEPS=1",
                 "--gin.MIXTURE_OR_TASK_MODULE=no_such_tasks"])
    err = capsys.readouterr().err
    assert code == 2 and "MIXTURE_OR_TASK_MODULE='no_such_tasks': no module named 'no_such_tasks'" in err
