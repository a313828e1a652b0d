"""UL2 denoisers as seqio preprocessors, usable in any seqio.Task after tokenization.

    seqio.TaskRegistry.add("my_c4_x", source=seqio.TfdsDataSource("c4/en:3.0.1"),
        preprocessors=[my_cleaning, functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
                       seqio.preprocessors.tokenize,
                       functools.partial(ul2_denoise, denoisers=[UL2R[2]])],
        output_features={"inputs": seqio.Feature(vocab, add_eos=False),
                         "targets": seqio.Feature(vocab, add_eos=False)})

`ul2_denoise` reads the token ids of feature `feature_key` (default `targets`, what `tokenize` wrote),
concatenates documents with an EOS after each and splits the stream into chunks of each denoiser's raw
length (`chunking.split_stream`, T5's reduce_concat_tokens + split_tokens), then denoises every chunk
(`denoisers.denoise`) into `{"inputs", "targets", "denoiser"}` sized for `inputs + targets` of the
sequence length (prefix and targets are concatenated before packing, U-PaLM section 2.2; read them with
`trim_output_features=False`, as the training loader does). Randomness is stateless and seeded by seqio
(`seqio.map_over_dataset(num_seeds=1)` under the task's `get_dataset(seed=...)`), so the same tokens and
seed give the same examples, and they are the examples of the built-in UL2R tasks (`ul2/cached_tasks.py`),
whose `get_dataset` runs this very preprocessor.

Several denoisers in one preprocessor (`denoisers=UL2R`): each document goes to one denoiser, drawn with
probability proportional to weight x raw length, so each denoiser's share of *examples* is its weight (as
a seqio Mixture's rates are); every denoiser concatenates its own documents. This is UL2's `ul2_objective`
(UL2 appendix, "shard_ds": each denoiser sees its own documents) in one pass over the source. The
built-in `ul2r` is instead a seqio Mixture of one task per denoiser (a task each, for per-task cursors).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from flan_ul2r.data.ul2.chunking import split_stream
from flan_ul2r.data.ul2.denoisers import UL2R, Denoiser, causal_lm, denoise, raw_length


def special_ids(vocabulary: Any, denoiser: Denoiser | None) -> dict[str, Any]:
    """Sentinel ids, the denoiser's mode-token id and EOS of a vocabulary.

    Our vocabularies name them (`sentinel_ids`, `mode_token_ids`); a plain seqio vocabulary with extra ids
    gets T5's sentinels (`<extra_id_0>` = vocab_size - 1, counting down) and no mode tokens.
    """
    sentinels = getattr(vocabulary, "sentinel_ids", None)
    if sentinels is None:
        top, extra = int(vocabulary.vocab_size) - 1, int(getattr(vocabulary, "extra_ids", 0) or 0)
        sentinels = [top - j for j in range(extra)]
    mode_id = None
    if denoiser is not None and denoiser.mode_token:
        modes = getattr(vocabulary, "mode_token_ids", {}) or {}
        if denoiser.mode_token not in modes:
            raise ValueError(f"denoiser {denoiser.name!r}: mode_token={denoiser.mode_token!r} not in the "
                             f"vocabulary's mode tokens {sorted(modes)} (use "
                             "flan_ul2r.data.get_vocabulary, or a Denoiser with mode_token='')")
        mode_id = int(modes[denoiser.mode_token])
    return {"sentinel_ids": tuple(int(s) for s in sentinels), "mode_id": mode_id,
            "eos_id": int(vocabulary.eos_id)}


@tf.autograph.experimental.do_not_convert
def make_example(tokens: tf.Tensor, seed: Any, denoiser: Denoiser | None, vocabulary: Any,
                 eos_after_inputs: bool = False) -> dict[str, tf.Tensor]:
    """One raw chunk -> example: `denoise` (None = plain causal LM: no inputs, targets = chunk + EOS).
    Left out of autograph: the denoisers are plain TF ops, so converting them changes nothing and costs
    about 0.8 s in every process that builds UL2R data (a tensor used as a Python bool here would fail at
    trace time, loudly)."""
    ids = special_ids(vocabulary, denoiser)
    if denoiser is None:
        return causal_lm(tokens, ids["eos_id"])
    seed = tf.cast(tf.reshape(tf.convert_to_tensor(seed), [2]), tf.int64)
    return denoise(tokens, seed, denoiser, ids["sentinel_ids"], ids["mode_id"], ids["eos_id"],
                   eos_after_inputs)


def chunk_length(denoiser: Denoiser | None, sequence_length: Mapping[str, int],
                 eos_after_inputs: bool = False) -> int:
    """Raw chunk length for a denoiser at `inputs + targets` (causal LM: total - 1, room for EOS)."""
    total = int(sequence_length.get("inputs", 0) or 0) + int(sequence_length["targets"])
    return total - 1 if denoiser is None else raw_length(denoiser, total, eos_after_inputs)


def _vocabulary(output_features: Mapping[str, seqio.Feature], feature_key: str) -> Any:
    if feature_key not in output_features:
        raise ValueError(f"ul2_denoise: feature_key={feature_key!r} is not an output feature "
                         f"{sorted(output_features)}; its vocabulary gives the sentinels and EOS")
    return output_features[feature_key].vocabulary


def _documents(dataset: tf.data.Dataset, feature_key: str) -> tf.data.Dataset:
    spec = dataset.element_spec
    if not isinstance(spec, Mapping) or feature_key not in spec:
        raise ValueError(f"ul2_denoise: examples have no feature {feature_key!r} (they have "
                         f"{sorted(spec) if isinstance(spec, Mapping) else spec}); tokenize first")
    docs = dataset.map(lambda ex: tf.cast(tf.reshape(ex[feature_key], [-1]), tf.int32),
                       num_parallel_calls=tf.data.AUTOTUNE)
    return docs.filter(lambda tokens: tf.size(tokens) > 0)  # as corpus builds do: no lone separators


def ul2_denoise(dataset: tf.data.Dataset, sequence_length: Mapping[str, int],
                output_features: Mapping[str, seqio.Feature], *, denoisers: Sequence[Denoiser] = UL2R,
                feature_key: str = "targets", concatenate: bool = True, separator: bool = True,
                eos_after_inputs: bool = False) -> tf.data.Dataset:
    """seqio preprocessor: tokenized documents -> UL2 denoising examples (module docstring).

    concatenate: T5's concatenate-then-split (False: each document cut on its own, `chunking.py` says
    what that does to span lengths); separator: EOS after every concatenated document (False: T5's bare
    concatenation); eos_after_inputs: end the inputs with EOS too (`denoisers.py`; default off).
    """
    denoisers = tuple(denoisers)
    if not denoisers:
        raise ValueError("ul2_denoise: denoisers is empty")
    vocabulary = _vocabulary(output_features, feature_key)
    raws = [chunk_length(d, sequence_length, eos_after_inputs) for d in denoisers]
    docs = _documents(dataset, feature_key)
    docs = _assign(docs, [d.weight * r for d, r in zip(denoisers, raws)])
    chunks = split_stream(docs, raws, separator_id=int(vocabulary.eos_id) if separator else None,
                          concatenate=concatenate)

    @seqio.map_over_dataset(num_seeds=1)
    def _denoise(chunk: tuple[tf.Tensor, tf.Tensor], seed: Any) -> dict[str, tf.Tensor]:
        tokens, branch = chunk
        branches = [lambda d=d: make_example(tokens, seed, d, vocabulary, eos_after_inputs)
                    for d in denoisers]
        return branches[0]() if len(branches) == 1 else tf.switch_case(branch, branches)

    return _denoise(chunks)


def _assign(docs: tf.data.Dataset, weights: Sequence[float]) -> tf.data.Dataset:
    """(tokens, branch): each document to one branch, drawn with probability ~ weights (seqio-seeded)."""
    if len(weights) == 1:
        return docs.map(lambda t: (t, tf.constant(0, tf.int32)))
    w = np.asarray(weights, np.float64)
    if not (w >= 0).all() or not w.sum() > 0:
        raise ValueError(f"ul2_denoise: denoiser weights {list(weights)} must be >= 0 and not all 0")
    cum = tf.constant(np.cumsum(w / w.sum())[:-1], tf.float32)

    @seqio.map_over_dataset(num_seeds=1)
    def assign(tokens: tf.Tensor, seed: Any) -> tuple[tf.Tensor, tf.Tensor]:
        pair = tf.cast(tf.reshape(tf.convert_to_tensor(seed), [2]), tf.int64)
        u = tf.random.stateless_uniform([], seed=pair)
        return tokens, tf.reduce_sum(tf.cast(u >= cum, tf.int32))

    return assign(docs)


def causal_lm_chunks(dataset: tf.data.Dataset, sequence_length: Mapping[str, int],
                     output_features: Mapping[str, seqio.Feature], *, feature_key: str = "targets",
                     concatenate: bool = True, separator: bool = True) -> tf.data.Dataset:
    """seqio preprocessor: tokenized documents -> plain causal-LM examples (no inputs, targets = a chunk
    of `inputs + targets - 1` tokens + EOS), chunked like `ul2_denoise` (the `lm` baseline task)."""
    vocabulary = _vocabulary(output_features, feature_key)
    docs = _documents(dataset, feature_key).map(lambda t: (t, tf.constant(0, tf.int32)))
    chunks = split_stream(docs, [chunk_length(None, sequence_length)],
                          separator_id=int(vocabulary.eos_id) if separator else None, concatenate=concatenate)
    return chunks.map(lambda tokens, _: make_example(tokens, None, None, vocabulary),
                      num_parallel_calls=tf.data.AUTOTUNE)
