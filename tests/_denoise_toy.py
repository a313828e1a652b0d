"""Shared toy setup for the denoiser tests: a small vocabulary and a corpus of their own."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

SENTINELS = tuple(range(300, 200, -1))  # <extra_id_0> = 300, counting down as T5 does
MODES = {"[NLU]": 301, "[NLG]": 302, "[S2S]": 303}
EOS, BOS = 1, 0


def _decode(ids) -> str:
    names = {v: k for k, v in MODES.items()} | {s: f"<extra_id_{j}>" for j, s in enumerate(SENTINELS)}
    return "".join(names.get(int(i), "</s>" if int(i) == EOS else chr(int(i))) for i in ids)


VOCAB = SimpleNamespace(sentinel_ids=SENTINELS, mode_token_ids=MODES, eos_id=EOS, bos_id=BOS, pad_id=0,
                        vocab_size=304, decode=_decode)


def toy_documents(num_docs: int = 120, seed: int = 0) -> list[np.ndarray]:
    """Documents of token ids in [3, 200) (never special), lengths 0..3000 (some empty, many long)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 200, size=int(n)).astype(np.int32) for n in rng.integers(0, 3000, num_docs)]


def reconstruct(inputs, targets, mode: bool = True) -> list[int]:
    """Undo a span or prefix example in plain python: the original raw tokens."""
    inputs, targets = [int(t) for t in inputs], [int(t) for t in targets]
    if mode:
        assert inputs[0] in MODES.values(), inputs[:3]
        inputs = inputs[1:]
    assert targets[-1] == EOS
    targets = targets[:-1]
    sentinel = set(SENTINELS)
    if not targets or targets[0] not in sentinel:  # prefix LM: prefix ++ suffix
        assert not sentinel & set(inputs)
        return inputs + targets
    spans: list[list[int]] = []
    for t in targets:
        if t in sentinel:
            spans.append([])
        else:
            spans[-1].append(t)
    out: list[int] = []
    j = 0
    for t in inputs:
        if t in sentinel:
            assert t == SENTINELS[j % len(SENTINELS)], (t, j)
            out += spans[j]
            j += 1
        else:
            out.append(t)
    assert j == len(spans), (j, len(spans))
    return out
