"""Decoder-only prefix-LM feature conversion, packed or padded, in numpy.

Exact seqio `PrefixLMFeatureConverter` semantics (seqio's
`feature_converters.py`; U-PaLM section 2.2 for the layout), docs/ARCHITECTURE.md section 1:
- `decoder_target_tokens` = inputs ++ targets of each example (concatenated before packing/padding,
  U-PaLM 2.2), then 0-padding;
- `decoder_input_tokens` = targets shifted right by one within each segment, first position `bos_id`;
- `decoder_loss_weights` = 1.0 on target tokens only (seqio's default `loss_on_targets_only=True`);
- `decoder_causal_attention` = 1 on the inputs **plus one position** (the first target position reads
  the last input token), 0 elsewhere;
- `decoder_segment_ids` 1, 2, ... per example in a row (0 = padding); `decoder_positions` restart at 0.

Why our own and not seqio's class: the training loader packs greedily in draw order so that a batch is a
pure function of a draw range (seekable, resumable); seqio packs through tf.data windows with no way to
say which examples a batch holds. The arithmetic above is the same: tests/test_feature_converter.py
checks our rows against seqio's own PrefixLMFeatureConverter (packed: identical; unpacked: identical
except that seqio shifts the last target token into the first padding position, which has no loss).
"""
from __future__ import annotations

import numpy as np

FEATURES = ("decoder_target_tokens", "decoder_input_tokens", "decoder_loss_weights",
            "decoder_segment_ids", "decoder_positions", "decoder_causal_attention")


def trim_example(inputs: np.ndarray, targets: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Same policy as `seekable.trim_to_total`: targets keep their head, inputs their tail."""
    targets = targets[:length]
    keep = length - len(targets)
    return inputs[max(len(inputs) - keep, 0):], targets


class Packer:
    """Fills a [batch_size, length] batch with examples, greedily in the order they are added.

    `add` puts an example at the end of the current row, or starts the next row when it does not fit;
    it returns False (and adds nothing) when no row is left - that example then starts the next batch.
    With pack=False every example gets its own row. Examples longer than `length` are trimmed first.
    """

    def __init__(self, batch_size: int, length: int, bos_id: int = 0, pack: bool = True):
        if batch_size < 1 or length < 2:
            raise ValueError(f"Packer: batch_size={batch_size} must be >= 1 and length={length} >= 2")
        self.batch_size, self.length, self.bos_id, self.pack = batch_size, length, bos_id, pack
        self._arange = np.arange(length, dtype=np.int32)
        self.reset()

    def reset(self) -> None:
        b, n = self.batch_size, self.length
        self._tokens = np.zeros((b, n), np.int32)
        self._inputs = np.zeros((b, n), np.int32)
        self._weights = np.zeros((b, n), np.float32)
        self._segments = np.zeros((b, n), np.int32)
        self._positions = np.zeros((b, n), np.int32)
        self._causal = np.zeros((b, n), np.int32)
        self._row, self._fill, self._segment, self.num_examples = 0, 0, 0, 0

    def add(self, inputs: np.ndarray, targets: np.ndarray) -> bool:
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        if len(inputs) + len(targets) > self.length:
            inputs, targets = trim_example(inputs, targets, self.length)
        n_in = len(inputs)
        size = n_in + len(targets)
        if size == 0:
            return True
        if self.num_examples and (not self.pack or self._fill + size > self.length):
            if self._row + 1 >= self.batch_size:
                return False
            self._row, self._fill, self._segment = self._row + 1, 0, 0
        r, a = self._row, self._fill
        b = a + size
        tokens = self._tokens[r]
        tokens[a:a + n_in] = inputs
        tokens[a + n_in:b] = targets
        self._inputs[r, a] = self.bos_id
        self._inputs[r, a + 1:b] = tokens[a:b - 1]
        self._weights[r, a + n_in:b] = 1.0
        self._segment += 1
        self._segments[r, a:b] = self._segment
        self._positions[r, a:b] = self._arange[:size]
        self._causal[r, a:a + min(n_in + 1, size)] = 1
        self._fill = b
        self.num_examples += 1
        return True

    def emit(self) -> dict[str, np.ndarray]:
        """The batch so far (rows not reached are all padding); then starts an empty batch."""
        batch = dict(zip(FEATURES, (self._tokens, self._inputs, self._weights, self._segments,
                                    self._positions, self._causal)))
        self.reset()
        return batch


def convert_examples(examples: list[tuple[np.ndarray, np.ndarray]], batch_size: int, length: int,
                     bos_id: int = 0, pack: bool = True) -> tuple[dict[str, np.ndarray], int]:
    """Packs as many leading `examples` as fit into one batch; returns (batch, number used)."""
    packer = Packer(batch_size, length, bos_id, pack)
    used = 0
    for inputs, targets in examples:
        if not packer.add(inputs, targets):
            break
        used += 1
    return packer.emit(), used
