"""Where a generation ends: EOS, stop sequences (token ids inside the jitted loop, strings on the text).

Stop strings are matched on the decoded text, which is the truth (a string can be tokenized in several
ways). To also stop *early*, each string's own tokenization is given to the decoding loop as a token-id
stop sequence: when a row ends with those ids it is done. A string reached through another tokenization
is still cut here, the row just ran longer than it had to.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ANY, NEVER = -1, -3  # stop-array fillers: matches any token / matches none (tokens are >= 0)


def stop_id_array(sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """int32 [n, w]: the non-empty sequences right-aligned, ANY before the shorter ones (generate.py).
    Padded to power-of-two sizes (at least 4 x 8) with NEVER rows, so calls share compiled shapes."""
    seqs = [list(map(int, s)) for s in sequences if len(s)]
    rows = 1 << max(2, (len(seqs) - 1).bit_length())
    width = 1 << max(3, (max((len(s) for s in seqs), default=1) - 1).bit_length())
    out = np.full((rows, width), NEVER, np.int32)
    for i, s in enumerate(seqs):
        out[i] = ANY
        out[i, width - len(s):] = s
    return out


def cut_before_eos(ids: Sequence[int], eos_id: int) -> list[int]:
    ids = [int(i) for i in ids]
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


def cut_before_id_sequences(ids: Sequence[int], sequences: Sequence[Sequence[int]]) -> list[int]:
    """`ids` up to the first place where one of `sequences` starts (each must be complete in `ids`)."""
    ids = [int(i) for i in ids]
    end = len(ids)
    for seq in (list(map(int, s)) for s in sequences if len(s)):
        for j in range(len(ids) - len(seq) + 1):
            if j < end and ids[j:j + len(seq)] == seq:
                end = j
                break
    return ids[:end]


def cut_at_stop_strings(ids: Sequence[int], stops: Sequence[str], decode: Callable[[Sequence[int]], str]
                        ) -> tuple[list[int], str]:
    """(ids, text) cut before the first occurrence of any stop string in `decode(ids)`.

    The text is cut exactly; the ids are the longest prefix whose text ends at or before the cut (a token
    that straddles the cut is dropped)."""
    ids = [int(i) for i in ids]
    text = decode(ids)
    found = [p for p in (text.find(s) for s in stops if s) if p >= 0]
    if not found:
        return ids, text
    cut = min(found)
    lo, hi = 0, len(ids)  # largest j with len(decode(ids[:j])) <= cut (text length grows with j)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(decode(ids[:mid])) <= cut:
            lo = mid
        else:
            hi = mid - 1
    return ids[:lo], text[:cut]
