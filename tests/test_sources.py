"""Sources: every kind reads back what the test wrote, in order, with provenance; bad input names the file,
line and field at fault; empty documents are counted, not errors; TFDS never downloads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flan_ul2r.data.corpus.sources import (
    EmptySourceError,
    SourceError,
    SourceSpec,
    SourceStats,
    parse_source_spec,
    read_documents,
    source_fingerprint,
)

DOCS = ["First document, plain ASCII.", "Zweites Dokument: Grüße ✓", "third one\twith a tab"]


def _read(spec, stats=None):
    return [(d.text, d.provenance) for d in read_documents(spec, stats)]


def test_parse_source_spec_round_trip():
    s = parse_source_spec("jsonl:/data/a.jsonl,/data/b*.jsonl#body")
    assert s == SourceSpec("jsonl", ("/data/a.jsonl", "/data/b*.jsonl"), "body", ())
    t = parse_source_spec("tfds:c4/en?split=validation&data_dir=/tfds")
    assert t.option("split") == "validation" and t.option("data_dir") == "/tfds" and t.paths == ("c4/en",)
    assert parse_source_spec(str(s)) == s and parse_source_spec(str(t)) == t
    with pytest.raises(SourceError, match="KIND one of"):
        parse_source_spec("csv:/x.csv")
    with pytest.raises(SourceError, match="unknown option 'per_file=true' for kind 'jsonl'"):
        parse_source_spec("jsonl:/x.jsonl?per_file=true")


def test_text_lines_and_per_file(tmp_path):
    (tmp_path / "a.txt").write_text(DOCS[0] + "\n\n   \n" + DOCS[1] + "\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text(DOCS[2], encoding="utf-8")
    stats = SourceStats()
    got = _read(f"text:{tmp_path}/*.txt", stats)
    assert got == [(DOCS[0], f"{tmp_path}/a.txt:1"), (DOCS[1], f"{tmp_path}/a.txt:4"),
                   (DOCS[2], f"{tmp_path}/b.txt:1")]
    assert (stats.documents, stats.empty_documents) == (3, 2)
    per_file = _read(f"text:{tmp_path}/*.txt?per_file=true")
    assert [t for t, _ in per_file] == [DOCS[0] + "\n\n   \n" + DOCS[1] + "\n", DOCS[2]]


def test_text_errors_name_file_line_and_offset(tmp_path):
    with pytest.raises(FileNotFoundError, match="pattern matches no file"):
        list(read_documents(f"text:{tmp_path}/*.none"))
    with pytest.raises(FileNotFoundError, match="missing.txt.*does not exist"):
        list(read_documents(f"text:{tmp_path}/missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nok \xff here\n")
    with pytest.raises(SourceError, match=r"bad.txt:2: invalid UTF-8 at byte offset 13 "):
        list(read_documents(f"text:{bad}"))
    with pytest.raises(SourceError, match=r"bad.txt:2: invalid UTF-8 at byte offset 13 "):
        list(read_documents(f"text:{bad}?per_file=true"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(EmptySourceError, match="no documents at all"):
        list(read_documents(f"text:{empty}"))


def test_huge_single_line_document(tmp_path):
    big = "word " * 2_000_000  # 10 MB on one line
    (tmp_path / "big.txt").write_text(big + "\nsmall\n")
    got = list(read_documents(f"text:{tmp_path}/big.txt"))
    assert len(got) == 2 and len(got[0].text) == len(big) and got[1].text == "small"


def test_jsonl_field_and_errors(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps({"body": d, "id": i}) for i, d in enumerate(DOCS))
                 + "\n" + json.dumps({"body": ""}) + "\n\n")
    stats = SourceStats()
    assert _read(f"jsonl:{p}#body", stats) == [(d, f"{p}:{i + 1}") for i, d in enumerate(DOCS)]
    assert stats.empty_documents == 1
    with pytest.raises(SourceError, match=r"d.jsonl:1: field 'text' missing; present fields "
                                          r"\['body', 'id'\]"):
        list(read_documents(f"jsonl:{p}"))
    with pytest.raises(SourceError, match=r"d.jsonl:1: field 'id' is a int, not a string"):
        list(read_documents(f"jsonl:{p}#id"))
    p.write_text(json.dumps({"text": "ok"}) + "\n{broken\n")
    with pytest.raises(SourceError, match=r"d.jsonl:2: not valid JSON"):
        list(read_documents(f"jsonl:{p}"))
    p.write_bytes(b'{"text": "ok"}\n{"text": "\xc3("}\n')
    with pytest.raises(SourceError, match=r"d.jsonl:2: invalid UTF-8 at byte offset 25"):
        list(read_documents(f"jsonl:{p}"))


def _example(tf, **feats):
    def feature(v):
        if isinstance(v, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
    return tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in feats.items()}))


def test_tfrecord(tmp_path):
    import tensorflow as tf
    path = str(tmp_path / "d.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for i, d in enumerate(DOCS):
            w.write(_example(tf, text=d, n=i).SerializeToString())
    assert _read(f"tfrecord:{path}") == [(d, f"{path}:record {i}") for i, d in enumerate(DOCS)]
    with pytest.raises(SourceError, match=r"d.tfrecord:record 0: feature 'body' missing; present features "
                                          r"\['n', 'text'\]"):
        list(read_documents(f"tfrecord:{path}#body"))
    with pytest.raises(SourceError, match="feature 'n' is a int64_list"):
        list(read_documents(f"tfrecord:{path}#n"))


def test_parquet_and_hf(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.table({"content": DOCS + [None], "n": list(range(4))})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=2)
    stats = SourceStats()
    assert _read(f"parquet:{tmp_path}/d.parquet#content", stats) == [
        (d, f"{tmp_path}/d.parquet:row {i}") for i, d in enumerate(DOCS)]
    assert stats.empty_documents == 1
    assert [t for t, _ in _read(f"hf:{tmp_path}/*.parquet#content")] == DOCS
    with pytest.raises(SourceError, match=r"d.parquet: field 'text' missing; present "
                                          r"fields \['content', 'n'\]"):
        list(read_documents(f"parquet:{tmp_path}/d.parquet"))
    with pytest.raises(SourceError, match="field 'n' has type int64, not a string"):
        list(read_documents(f"parquet:{tmp_path}/d.parquet#n"))
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": DOCS}),
                               "test": datasets.Dataset.from_dict({"text": ["held out"]})})
    dd.save_to_disk(str(tmp_path / "saved"))
    assert [t for t, _ in _read(f"hf:{tmp_path}/saved?split=train")] == DOCS
    assert _read(f"hf:{tmp_path}/saved?split=test") == [("held out", f"{tmp_path}/saved:row 0")]
    with pytest.raises(SourceError, match=r"splits \['test', 'train'\]; choose one"):
        list(read_documents(f"hf:{tmp_path}/saved"))


def test_tfds_prepared_locally_and_never_downloads(tmp_path):
    import tensorflow_datasets as tfds

    class FlanUl2rTinyDocs(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "n": tfds.features.Scalar(dtype=np.int64)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, d in enumerate(DOCS):
                yield i, {"text": d, "n": i}

    FlanUl2rTinyDocs(data_dir=str(tmp_path)).download_and_prepare()
    got = _read(f"tfds:flan_ul2r_tiny_docs?split=train&data_dir={tmp_path}")
    assert sorted(t for t, _ in got) == sorted(DOCS)
    assert got[0][1].startswith("tfds:flan_ul2r_tiny_docs/train:")
    assert source_fingerprint(f"tfds:flan_ul2r_tiny_docs?data_dir={tmp_path}")["files"]
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(SourceError, match=r"'c4/en' is not prepared .*never downloads"):
        list(read_documents(f"tfds:c4/en?split=train&data_dir={empty}"))
    assert list(empty.iterdir()) == []  # nothing was fetched or written


def test_fingerprint_changes_with_file_contents(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("one\n")
    before = source_fingerprint(f"text:{tmp_path}/*.txt")
    p.write_text("one two\n")
    after = source_fingerprint(f"text:{tmp_path}/*.txt")
    assert before["files"][0][0] == after["files"][0][0] == str(p)
    assert before != after and after["files"][0][1] == 8
