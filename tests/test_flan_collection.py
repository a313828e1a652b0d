"""Flan Collection exports (FLAN v2's inputs / targets / task_source / task_name / template_type rows):
families from task_source, per-task caps, the `flan` mixture from one gin line, errors naming file, line
and field."""

import collections
import json
from pathlib import Path

import gin
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flan_ul2r.tasks.flan as flan_registrations
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.core.seekable import get_mixture_or_task
from flan_ul2r.data.flan import collection as fc
from flan_ul2r.data.flan import mixing as flan_mixing
from flan_ul2r.data.flan.formats import FormatError
from flan_ul2r.data.vocab.vocabularies import get_vocabulary

EXPORT = Path(__file__).parent / "fixtures" / "flan_collection_export.jsonl"
RAW = [json.loads(line) for line in EXPORT.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAN_UL2R_CACHE", str(tmp_path / "cache"))


def test_rows_get_families_from_task_source_and_styles_from_template_type(tmp_path):
    rows = list(fc.read_rows(EXPORT))
    assert len(rows) == len(RAW) == 21
    families = collections.Counter(r["family"] for r in rows)
    assert families == {"muffin": 9, "t0sf": 4, "niv2": 5, "cot": 3}
    assert {r["style"] for r in rows if r["family"] == "cot"} == {"cot", "fs_cot"}
    assert [r["style"] for r in rows if r["family"] != "cot"] == [r["template_type"] for r in RAW[:18]]
    parquet = tmp_path / "export.parquet"
    pq.write_table(pa.Table.from_pylist(RAW), parquet)
    assert list(fc.read_rows(parquet)) == rows


def test_family_slots_cap_each_task_and_walk_through_its_rows():
    vocab = get_vocabulary("byte")
    table = fc.load_collection(str(EXPORT), vocab)
    muffin = fc.CollectionFamily(table, "muffin", cap=2, eos_id=vocab.eos_id)
    assert muffin.num_records("train") == 4  # anli (6 rows) and ag_news (3 rows), 2 slots each
    texts = collections.defaultdict(set)
    positions = np.arange(12)  # three epochs of the 4 slots
    seeds = np.stack([np.zeros(12, np.int64), positions], axis=1)
    x, x_len, y, y_len, styles, tasks = muffin.block(positions % 4, seeds, "train", 2048)
    for xi, yi, task in zip(np.split(x, np.cumsum(x_len)[:-1]), np.split(y, np.cumsum(y_len)[:-1]), tasks):
        assert xi[-1] == yi[-1] == vocab.eos_id
        texts[task.decode()].add(vocab.decode(xi[:-1].tolist()))
    raw = collections.defaultdict(set)
    for r in RAW:
        raw[r["task_name"]].add(r["inputs"])
    assert texts["anli_r1:0.1.0"] == raw["anli_r1:0.1.0"]  # 2 slots x 3 epochs = all 6 rows
    assert texts["ag_news_subset:1.0.0"] == raw["ag_news_subset:1.0.0"]
    assert set(styles) <= {b"zs_opt", b"zs_noopt", b"fs_opt", b"fs_noopt"}


def test_one_gin_line_trains_flan_on_the_collection():
    with gin.unlock_config():
        gin.bind_parameter("flan_mixture.collection", str(EXPORT))
    try:
        flan_registrations.register_after_gin()
        entries = dict((t.name, r) for t, r in get_mixture_or_task("flan"))
        rates = flan_mixing.FAMILY_RATES_PAPER
        assert entries == pytest.approx(
            {f"flan_collection_{f}": r / sum(rates.values()) for f, r in rates.items()}
        )
        stream = make_train_iterator("flan", {"inputs": 256, "targets": 64}, 2, seed=0, with_strings=True)
        vocab = get_mixture_or_task("flan")[0][0].vocabulary
        by_text = {r["inputs"]: r for r in RAW}
        for _, ex in zip(range(50), stream.examples()):
            row = by_text[vocab.decode(ex["inputs"][:-1].tolist())]
            assert ex["task"].decode() == row["task_name"]
            assert vocab.decode(ex["targets"][:-1].tolist()) == row["targets"]
    finally:
        with gin.unlock_config():
            gin.bind_parameter("flan_mixture.collection", None)
        flan_registrations.register_after_gin()
    assert not any(t.name.startswith("flan_collection") for t, _ in get_mixture_or_task("flan"))


def _write(tmp_path, rows, name="export.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        ({"template_type": None}, r"export.jsonl:3: field 'template_type' missing"),
        (
            {"template_type": "fs_cot_opt"},
            r"export.jsonl:3: field 'template_type' is 'fs_cot_opt'; known types",
        ),
        ({"task_source": "Wiki"}, r"export.jsonl:3: field 'task_source' is 'Wiki'; known sources"),
        ({"targets": 7}, r"export.jsonl:3: field 'targets' must be a string, got int"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, change, message):
    rows = [dict(r) for r in RAW[:4]]
    rows[2].update(change)
    rows[2] = {k: v for k, v in rows[2].items() if v is not None}
    with pytest.raises(FormatError, match=message):
        fc.load_collection(str(_write(tmp_path, rows)), get_vocabulary("byte"))


def test_bad_parquet_row_names_the_row(tmp_path):
    rows = [dict(r) for r in RAW[:5]]
    rows[4]["template_type"] = "few_shot"
    path = tmp_path / "export.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(FormatError, match=r"export.parquet: row 4: field 'template_type' is 'few_shot'"):
        list(fc.read_rows(path))


def test_family_without_a_rate_is_named(tmp_path):
    rows = [dict(RAW[0], task_source="Dialog", task_name="wiki_dialog")] + RAW[:3]
    with gin.unlock_config():
        gin.bind_parameter("flan_mixture.collection", str(_write(tmp_path, rows)))
    try:
        with pytest.raises(ValueError, match=r"no rate for families \['dialog'\]"):
            flan_registrations.register_after_gin()
    finally:
        with gin.unlock_config():
            gin.bind_parameter("flan_mixture.collection", None)
        flan_registrations.register_after_gin()
