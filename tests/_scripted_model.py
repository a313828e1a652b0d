"""A deterministic stand-in for `flan_ul2r.load_model(...)` (the decoding/scoring interface of issue 9),
to test the evaluation logic (extraction, voting, metrics, files) without a trained model.

`answer(prompt_text, sample_index)` scripts the completion; `logprob(prompt_text, continuation_text)` the
scores. Tokens are the byte vocabulary's, so lengths, EOS and decoding behave like a real vocabulary.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from flan_ul2r.data.vocab.vocabularies import get_vocabulary


class ScriptedModel:
    def __init__(self, answer: Callable[[str, int], str], *,
                 logprob: Callable[[str, str], float] | None = None, max_length: int = 8192,
                 prefix_lm: bool = False):
        self.vocab = get_vocabulary("byte")
        self.answer, self.logprob = answer, logprob
        self.max_length, self.prefix_lm = max_length, prefix_lm
        self.generate_calls: list[dict] = []
        self.prompts_seen: list[list[int]] = []

    def tokenize(self, text: str) -> list[int]:
        return [int(i) for i in self.vocab.encode(text)]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.vocab.decode([int(i) for i in ids])

    def _prompt_text(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        if ids and ids[-1] == self.vocab.eos_id:
            ids = ids[:-1]
        return self.detokenize(ids)

    def generate_batch(self, prompts, *, max_new_tokens=32, temperature=0.0, top_k=0, top_p=1.0,
                       num_samples=1, seed=0, stop_sequences=(), stop_at_eos=True, prefix_lm=None,
                       batch_size=8):
        self.generate_calls.append(dict(n=len(prompts), max_new_tokens=max_new_tokens,
                                        temperature=temperature, num_samples=num_samples,
                                        stop_sequences=tuple(stop_sequences)))
        out = []
        for p in prompts:
            if len(p) + max_new_tokens > self.max_length:
                raise ValueError(f"prompt of {len(p)} + {max_new_tokens} tokens > {self.max_length}")
            self.prompts_seen.append(list(p))
            text = self._prompt_text(p)
            out.append([self.tokenize(self.answer(text, k))[:max_new_tokens] + [self.vocab.eos_id]
                        for k in range(num_samples)])
        return out

    def score(self, contexts, continuations, *, prefix_lm=None, batch_size=8):
        return [(float(self.logprob(self._prompt_text(c), self.detokenize(x))), False)
                for c, x in zip(contexts, continuations)]
