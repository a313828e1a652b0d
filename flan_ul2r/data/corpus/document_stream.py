"""Streaming documents from a source spec: each host reads only its own files, tokenization on the fly.

`DocumentSource(spec)` is a seqio DataSource over the files of a `sources.SourceSpec` (text, jsonl,
tfrecord, hf/parquet; tfds reads the prepared dataset as one shard). Its shards are the files, so seqio's
`get_dataset(shard_info=ShardInfo(host, num_hosts))` gives host h the files h, h + num_hosts, ... (give at
least as many files as hosts; with fewer, seqio reads every file and keeps every num_hosts-th document).
Files are read by the project's readers (`sources.read_documents`: errors name file:line and field), a
few files at a time in parallel (`interleave`), in a seeded order when shuffling. The first read error
is also kept as `failure`, so the loader can name it without TF's wrapping (core/tfdata_errors.py).

Splits: `validation` holds the documents `validation_split.is_held_out` holds out (by file name and
position: the same documents as the token cache's split of the same source), `train` the rest.

`tokenize_documents` (a seqio preprocessor) turns `{"text"}` into `{"targets": int32 ids}` in batches
(`encode_tf` on a batch of texts: HF `tokenizers` and SentencePiece encode a batch in one call, in
parallel in Rust / C++), so tokenization runs only as far as the reader consumes: nothing is tokenized
ahead of the run beyond tf.data's buffers.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from flan_ul2r.data.corpus.sources import SourceSpec, parse_source_spec, read_documents, resolve_files
from flan_ul2r.data.corpus.validation_split import in_split

READ_PARALLELISM = 4  # files read at once per host
TOKENIZE_BATCH = 64  # texts per encode_tf call
# Shuffling streamed data: documents are shuffled as text (cheap to hold, nothing tokenized yet) in a
# buffer of DOCUMENT_SHUFFLE_BUFFER, after the seeded file order; the streamed tasks then keep only a
# small example buffer (STREAM_EXAMPLE_SHUFFLE_BUFFER), so the first batch needs only a few hundred
# documents tokenized (seqio's default 1,000-example buffer of 2048-token examples would need ~8M tokens
# per task before the first one).
DOCUMENT_SHUFFLE_BUFFER = 4096
STREAM_EXAMPLE_SHUFFLE_BUFFER = 128


class DocumentSource(seqio.DataSource):
    """Documents `{"text": string}` of a source spec, sharded by file (module docstring)."""

    def __init__(self, spec: str | SourceSpec, splits: Sequence[str] = ("train", "validation")):
        self.spec = parse_source_spec(spec)
        self.failure: str | None = None  # the first read error (file:line), for the loader's message
        super().__init__(splits=splits, caching_permitted=False)

    @property
    def supports_arbitrary_sharding(self) -> bool:
        return False

    def list_shards(self, split: str) -> Sequence[str]:
        return [self.spec.paths[0]] if self.spec.kind == "tfds" else resolve_files(self.spec)

    def _read(self, path: bytes, split: bytes) -> Iterator[str]:
        spec = self.spec
        if spec.kind != "tfds":
            spec = dataclasses.replace(spec, paths=(path.decode(),))
        split_name = split.decode()
        try:
            for doc in read_documents(spec, allow_empty=True):
                if in_split(doc.provenance, split_name):
                    yield doc.text
        except Exception as e:  # TF passes on only its text: keep it for data_errors.describe
            self.failure = self.failure or str(e)
            raise

    def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                    shard_info: seqio.ShardInfo | None = None, *, sequence_length: Any = None,
                    use_cached: bool = False, num_epochs: int | None = 1) -> tf.data.Dataset:
        files = list(self.list_shards(split))
        if shard_info is not None:
            files = files[shard_info.index::shard_info.num_shards]
        if shuffle:
            rng = np.random.default_rng(None if seed is None else int(seed) % 2**63)
            files = [files[i] for i in rng.permutation(len(files))]
        if not files:
            raise ValueError(f"source {self.spec}: no file for shard {shard_info}")

        def one_file(path: tf.Tensor) -> tf.data.Dataset:
            return tf.data.Dataset.from_generator(
                self._read, args=(path, split), output_signature=tf.TensorSpec([], tf.string))

        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            one_file, cycle_length=min(READ_PARALLELISM, len(files)), block_length=16,
            num_parallel_calls=min(READ_PARALLELISM, len(files)), deterministic=True)
        if shuffle:
            ds = ds.shuffle(DOCUMENT_SHUFFLE_BUFFER, seed=None if seed is None else int(seed) % 2**63)
        return ds.map(lambda text: {"text": text})


def tokenize_documents(dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature],
                       text_key: str = "text", feature_key: str = "targets") -> tf.data.Dataset:
    """seqio preprocessor: `{text_key: string}` -> `{feature_key: int32 ids}` with the feature's vocabulary,
    a batch of texts per call (byte vocabularies, which cannot encode a batch, one text per call)."""
    vocab = output_features[feature_key].vocabulary
    resolved = getattr(vocab, "resolved", vocab)
    if isinstance(resolved, seqio.ByteVocabulary):
        return dataset.map(lambda ex: {feature_key: tf.cast(vocab.encode_tf(ex[text_key]), tf.int32)},
                           num_parallel_calls=tf.data.AUTOTUNE)

    def encode(batch: Mapping[str, tf.Tensor]) -> tf.RaggedTensor:
        ids = vocab.encode_tf(batch[text_key])
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        return tf.cast(ids, tf.int32)

    ids = dataset.batch(TOKENIZE_BATCH).map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    return ids.unbatch().map(lambda t: {feature_key: t})
