"""EleutherAI lm-evaluation-harness backend: `lm_eval.api.model.LM` over our scoring and decoding,
registered as `flan-ul2r` (importing this module registers it).

    flan-ul2r lm-eval --model flan-ul2r --model_args checkpoint=/runs/flan/checkpoints/2000 --tasks hellaswag

- `loglikelihood`: (context, continuation) -> (log-probability sum, is greedy) from the model's `score`.
  The continuation's tokens are those that tokenizing context + continuation adds after the context (how
  lm-eval's own HF backend splits a pair). Contexts are encoded as the model read its training examples
  (`encode_prompt`: BOS first); an empty context is BOS alone (EOS if the model has no BOS).
- `loglikelihood_rolling`: lm-eval's disjoint rolling windows of at most `max_length` tokens, scored
  causally and summed.
- `generate_until`: greedy unless `do_sample`/`temperature` ask otherwise, up to `max_gen_toks`, cut at the
  first `until` string.
Contexts longer than the model are an error (ValueError naming the lengths); nothing is truncated.
Model args: `checkpoint` (required), `batch_size`, `prefix_lm` (true/false: encode contexts bidirectionally;
default = how the checkpoint was trained), `max_gen_toks` (default 256), `seed`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lm_eval import utils as lm_utils
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from flan_ul2r.evaluation.evaluate import check_model
from flan_ul2r.evaluation.prompt_plan import encode

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's HF backend default


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes")


@register_model("flan-ul2r")
class FlanUL2RLM(LM):
    """lm-eval LM over a `flan_ul2r.load_model` model (or any object with its interface, `model=`)."""

    def __init__(self, checkpoint: str | None = None, model: Any = None, batch_size: Any = 8,
                 prefix_lm: Any = None, max_gen_toks: Any = DEFAULT_MAX_GEN_TOKS, seed: Any = 0,
                 **unused: Any):
        super().__init__()
        if model is None:
            if not checkpoint:
                raise ValueError("flan-ul2r lm-eval backend: give --model_args checkpoint=DIR")
            import os

            if not os.path.isdir(str(checkpoint)):
                raise FileNotFoundError(f"checkpoint={checkpoint}: no such directory")
            import flan_ul2r

            model = flan_ul2r.load_model(str(checkpoint))
        check_model(model, f"checkpoint={checkpoint}")
        self.model = model
        self.batch_size = 8 if str(batch_size).startswith("auto") else int(batch_size)
        self.prefix_lm, self.max_gen_toks, self.seed = _flag(prefix_lm), int(max_gen_toks), int(seed)

    # --- tokens ------------------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return [int(i) for i in self.model.tokenize(text)]

    def _prefix_token(self) -> int:
        """What an empty context is: the model's BOS (`encode_prompt("")`) where it has one, else EOS
        (lm-eval's HF backend uses EOS)."""
        start = encode(self.model, "")
        return start[0] if start else int(self.model.vocab.eos_id)

    def _pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if not context:
            return [self._prefix_token()], self._ids(continuation)
        ctx, whole = encode(self.model, context), encode(self.model, context + continuation)
        if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
            return ctx, whole[len(ctx):]
        return ctx, self._ids(continuation)

    def _check(self, n: int, what: str) -> None:
        if n > int(self.model.max_length):
            raise ValueError(f"lm-eval request of {n} tokens ({what}) > the model's max_length "
                             f"{self.model.max_length}; requests are never truncated")

    # --- lm-eval API -------------------------------------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self._pair(*req.args) for req in requests]
        for ctx, cont in pairs:
            self._check(len(ctx) + len(cont), "context + continuation")
        out = []
        for start in tqdm(range(0, len(pairs), self.batch_size), disable=disable_tqdm, desc="loglikelihood"):
            chunk = pairs[start: start + self.batch_size]
            scores = self.model.score([c for c, _ in chunk], [x for _, x in chunk], prefix_lm=self.prefix_lm,
                                      batch_size=self.batch_size)
            out += [(float(lp), bool(greedy)) for lp, greedy in scores]
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        eos, n = self._prefix_token(), int(self.model.max_length)
        out = []
        for req in tqdm(requests, disable=disable_tqdm, desc="loglikelihood_rolling"):
            windows = [lm_utils.make_disjoint_window(w) for w in lm_utils.get_rolling_token_windows(
                token_list=self._ids(req.args[0]), prefix_token=eos, max_seq_len=n, context_len=1)]
            total = 0.0
            for start in range(0, len(windows), self.batch_size):
                chunk = windows[start: start + self.batch_size]
                scores = self.model.score([list(c) for c, _ in chunk], [list(x) for _, x in chunk],
                                          prefix_lm=False, batch_size=self.batch_size)
                total += sum(float(lp) for lp, _ in scores)
            out.append(total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(repr(sorted(req.args[1].items())), []).append(i)
        bar = tqdm(total=len(requests), disable=disable_tqdm, desc="generate_until")
        for indices in groups.values():
            kwargs = dict(requests[indices[0]].args[1])
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            temperature = float(kwargs.get("temperature", 0.0) or 0.0)
            if kwargs.get("do_sample") is False:
                temperature = 0.0
            elif kwargs.get("do_sample") and temperature == 0.0:
                temperature = 1.0  # HF generate's default when sampling
            prompts = [encode(self.model, requests[i].args[0]) for i in indices]
            for p in prompts:
                self._check(len(p) + max_new, "context + max_gen_toks")
            outs = self.model.generate_batch(
                prompts, max_new_tokens=max_new, temperature=temperature,
                top_p=float(kwargs.get("top_p", 1.0) or 1.0), top_k=int(kwargs.get("top_k", 0) or 0),
                num_samples=1, seed=self.seed, stop_sequences=tuple(until), prefix_lm=self.prefix_lm,
                batch_size=self.batch_size)
            for i, samples in zip(indices, outs):
                results[i] = _cut(self.model, samples[0], until)
            bar.update(len(indices))
        bar.close()
        return [r or "" for r in results]


def _cut(model: Any, ids: Sequence[int], until: Sequence[str]) -> str:
    ids = [int(i) for i in ids]
    eos = int(model.vocab.eos_id)
    text = model.detokenize(ids[: ids.index(eos)] if eos in ids else ids)
    for s in until:
        if s and s in text:
            text = text[: text.index(s)]
    return text
