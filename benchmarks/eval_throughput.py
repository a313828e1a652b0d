"""Few-shot evaluation throughput on this machine: ours (a shared few-shot prefix computed once per task,
suffixes sorted and batched behind it; flan_ul2r/decoding/prefix_cache.py) vs a plain HF transformers loop,
on the same imported model and the same prompts, measured in the same run.

    python benchmarks/eval_throughput.py [--subjects 2 --questions 16 --tasks 2 --bbh_prompts 8 --new 128]

- MMLU 5-shot rank scoring: each question's 4 answer letters scored by log-likelihood. The HF loop scores
  each (context, choice) pair with a full forward pass, batched and sorted by length as
  lm-evaluation-harness's HF backend does (`_loglikelihood_tokens`; `--lm_eval_grouping` also times its
  one-pass-per-context grouping of one-token continuations, `logits_cache`).
- BBH 3-shot CoT greedy generation, `--new` new tokens per prompt: HF `generate` on left-padded batches
  sorted by length (as lm-evaluation-harness's `generate_until`), ours `generate_batch` on the whole task.

The prompts come from our own benchmark readers (mmlu.py, bbh.py) over files written here in the public
layouts: MMLU-style subjects of generated questions (5 dev exemplars each) and BBH-style tasks with 3 CoT
exemplars, their text drawn from Python's standard-library documentation. The model is a Llama-style
transformer (~20M params, random weights, float32) built with transformers, saved as safetensors and
imported by `flan_ul2r.load_model`; a BPE tokenizer is trained on the same prose. Rounds alternate between
the two sides (a shared machine's drift hits both); the median round gives examples/s. Prints both, the
ratios (targets: >= 3x MMLU scoring, >= 2x BBH generation) and whether the predictions are identical.
"""
from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

LETTERS = "ABCD"


def prose() -> list[str]:
    """Sentences of the standard library's documentation (stable text every machine has)."""
    import argparse as a
    import collections
    import json as j
    import textwrap
    import unittest

    text = " ".join(inspect.getdoc(o) or "" for m in (a, collections, j, textwrap, unittest)
                    for o in [m, *[f for _, f in sorted(vars(m).items()) if callable(f)]])
    return [s.strip() + "." for s in " ".join(text.split()).split(". ") if 40 < len(s) < 300]


def write_mmlu(root: Path, sentences: list[str], subjects: int, questions: int, rng) -> list[str]:
    names = [f"subject_{i}" for i in range(subjects)]
    for split in ("dev", "val"):
        (root / split).mkdir(parents=True)
    for name in names:
        for split, n in (("dev", 5), ("val", questions)):
            with open(root / split / f"{name}_{split}.csv", "w", newline="") as f:
                for _ in range(n):
                    q = " ".join(rng.choice(sentences, 1 + rng.integers(2))) + " Which statement follows?"
                    opts = [str(rng.choice(sentences))[:70] for _ in range(4)]
                    csv.writer(f).writerow([q, *opts, LETTERS[rng.integers(4)]])
    return names


def write_bbh(root: Path, sentences: list[str], tasks: int, prompts: int, rng) -> list[str]:
    names = [f"task_{i}" for i in range(tasks)]
    (root / "bbh").mkdir(parents=True)
    (root / "cot-prompts").mkdir()
    for name in names:
        shots = [f"Q: {' '.join(rng.choice(sentences, 2))}\nA: Let's think step by step. "
                 f"{' '.join(rng.choice(sentences, 7))} So the answer is ({LETTERS[rng.integers(4)]})."
                 for _ in range(3)]
        (root / "cot-prompts" / f"{name}.txt").write_text("Answer the question.\n\n" + "\n\n".join(shots))
        rows = [{"input": " ".join(rng.choice(sentences, 2)), "target": "(A)"} for _ in range(prompts)]
        (root / "bbh" / f"{name}.json").write_text(json.dumps({"examples": rows}))
    return names


def build(directory: Path, sentences: list[str], args):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(sentences, trainers.BpeTrainer(vocab_size=8192, special_tokens=["<s>", "</s>"],
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=8192, hidden_size=args.d_model, intermediate_size=int(args.d_model * 2.75),
                      num_hidden_layers=args.layers, num_attention_heads=args.d_model // 64,
                      num_key_value_heads=max(1, args.d_model // 128), head_dim=64, rms_norm_eps=1e-5,
                      rope_theta=500_000.0, max_position_embeddings=4096, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(directory, safe_serialization=True)  # no tokenizer files: ids in, ids out
    return model, tok


def encode(tok, text: str) -> list[int]:
    return [0] + tok.encode(text).ids  # BOS, as a Llama tokenizer adds it


def _log_probs(model, seqs: list[list[int]]):
    """log-softmax of a forward pass over right-padded `seqs` (causal: padding after a row is never seen)."""
    import torch

    ids = torch.zeros((len(seqs), max(len(s) for s in seqs)), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.as_tensor(s)
    return torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)


def hf_scores(model, pairs: list[tuple[list[int], list[int]]], batch: int) -> list[float]:
    """lm-evaluation-harness's HF loglikelihood: sorted by length, right-padded batches, full forwards."""
    import torch

    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    out = [0.0] * len(pairs)
    with torch.inference_mode():
        for b0 in range(0, len(order), batch):
            idx = order[b0:b0 + batch]
            logp = _log_probs(model, [(pairs[i][0] + pairs[i][1])[:-1] for i in idx])
            for r, i in enumerate(idx):
                ctx, cont = pairs[i]
                pos = torch.arange(len(ctx) - 1, len(ctx) - 1 + len(cont))
                out[i] = float(logp[r, pos, torch.as_tensor(cont)].sum())
    return out


def hf_grouped_scores(model, pairs: list[tuple[list[int], list[int]]], batch: int) -> list[float]:
    """lm-evaluation-harness's `logits_cache`: one forward per distinct context when every continuation is
    one token (MMLU's letters)."""
    contexts: dict[tuple, list[int]] = {}
    for i, (ctx, _) in enumerate(pairs):
        contexts.setdefault(tuple(ctx), []).append(i)
    import torch

    out = [0.0] * len(pairs)
    keys = sorted(contexts, key=lambda c: -len(c))
    with torch.inference_mode():
        for b0 in range(0, len(keys), batch):
            group = keys[b0:b0 + batch]
            logp = _log_probs(model, [list(c) for c in group])
            for r, c in enumerate(group):
                for i in contexts[c]:
                    out[i] = float(logp[r, len(c) - 1, pairs[i][1][0]])
    return out


def hf_generate(model, prompts: list[list[int]], new: int, batch: int) -> list[list[int]]:
    import torch

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    with torch.inference_mode():
        for b0 in range(0, len(order), batch):
            idx = order[b0:b0 + batch]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(idx):
                ids[r, width - len(prompts[i]):] = torch.as_tensor(prompts[i])
                mask[r, width - len(prompts[i]):] = 1
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                 do_sample=False, eos_token_id=None, pad_token_id=0)
            for r, i in enumerate(idx):
                out[i] = gen[r, width:].tolist()
    return out


def best_choices(scores: list[float]) -> list[int]:
    return [int(np.argmax(scores[k:k + 4])) for k in range(0, len(scores), 4)]


def timed(rounds: int, runners: dict) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            time.sleep(0.5)  # let the other framework's worker threads go idle first
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return times


def report(title: str, count: int, times: dict[str, list[float]], target: float) -> None:
    rates = {name: count / float(np.median(t)) for name, t in times.items()}
    print(f"\n{title}")
    for name, t in times.items():
        rounds = ", ".join(f"{count / x:.2f}" for x in t)
        print(f"  {name:58s} {rates[name]:8.2f} examples/s median (rounds: {rounds})")
    ours = rates[next(iter(rates))]
    for name in list(rates)[1:]:
        goal = f" (target >= {target:g}x)" if target and name == list(rates)[1] else ""
        print(f"  ratio ours / {name}: {ours / rates[name]:.2f}x{goal}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--questions", type=int, default=16, help="MMLU questions per subject")
    p.add_argument("--tasks", type=int, default=2, help="BBH tasks")
    p.add_argument("--bbh_prompts", type=int, default=8, help="prompts per BBH task")
    p.add_argument("--new", type=int, default=128, help="new tokens per BBH prompt")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lm_eval_grouping", action="store_true",
                   help="also time one forward per context for one-token continuations (lm-eval's cache)")
    p.add_argument("--torch_threads", type=int, default=0,
                   help="torch intra-op threads (0 = its default); 1 avoids OpenMP spinning when busy")
    a = p.parse_args()
    if a.torch_threads:
        import torch

        torch.set_num_threads(a.torch_threads)
    import flan_ul2r
    from flan_ul2r.evaluation.benchmarks import bbh, mmlu

    rng, sentences = np.random.default_rng(0), prose()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        hf_model, tok = build(root / "model", sentences, a)
        ours = flan_ul2r.load_model(root / "model")
        n_params = sum(x.numel() for x in hf_model.parameters())
        subjects = write_mmlu(root / "mmlu", sentences, a.subjects, a.questions, rng)
        tasks = write_bbh(root / "bbh", sentences, a.tasks, a.bbh_prompts, rng)
        mmlu_pairs = [[(encode(tok, ex.prompt), tok.encode(f" {letter}").ids) for ex in
                       mmlu.load(root / "mmlu", s) for letter in LETTERS] for s in subjects]
        bbh_prompts = [[encode(tok, ex.prompt) for ex in bbh.load(root / "bbh", t, cot=True)] for t in tasks]
    lengths = [len(c) for pairs in mmlu_pairs for c, _ in pairs]
    print(f"model: Llama-style {a.layers} layers, d_model {a.d_model}, {n_params / 1e6:.1f}M params, "
          f"float32; batch {a.batch}; torch threads {__import__('torch').get_num_threads()}")
    print(f"MMLU: {a.subjects} subjects x {a.questions} questions x 4 choices, 5-shot prompts of "
          f"{min(lengths)}-{max(lengths)} tokens")
    blens = [len(x) for ps in bbh_prompts for x in ps]
    print(f"BBH: {a.tasks} tasks x {a.bbh_prompts} prompts, 3-shot CoT prompts of {min(blens)}-{max(blens)} "
          f"tokens, {a.new} new tokens each (greedy; random weights never stop early)")

    def ours_mmlu():
        return [s for pairs in mmlu_pairs for s, _ in ours.score([c for c, _ in pairs], [x for _, x in pairs],
                                                                  batch_size=a.batch)]

    def hf_mmlu():
        return [s for pairs in mmlu_pairs for s in hf_scores(hf_model, pairs, a.batch)]

    def ours_bbh():
        return [r[0] for ps in bbh_prompts
                for r in ours.generate_batch(ps, max_new_tokens=a.new, stop_at_eos=False, batch_size=a.batch)]

    def hf_bbh():
        return [g for ps in bbh_prompts for g in hf_generate(hf_model, ps, a.new, a.batch)]

    mm = {"flan-ul2r (shared prefix)": ours_mmlu, "HF transformers, per-choice forward": hf_mmlu}
    if a.lm_eval_grouping:
        mm["HF transformers, one forward per context"] = lambda: [
            s for pairs in mmlu_pairs for s in hf_grouped_scores(hf_model, pairs, a.batch)]
    first = {name: run() for name, run in mm.items()}  # warm-up (compilation) and the predictions
    picks = {name: best_choices(s) for name, s in first.items()}
    ref = next(iter(first.values()))
    for name, scores in first.items():
        diff = float(np.max(np.abs(np.asarray(scores) - np.asarray(ref))))
        same = sum(x == y for x, y in zip(picks[name], next(iter(picks.values()))))
        print(f"  {name}: predictions equal to ours {same}/{len(ref) // 4}; max |log p difference| "
              f"{diff:.2e}")
    report("MMLU 5-shot rank scoring (questions/s)", len(ref) // 4, timed(a.rounds, mm), 3)

    gen = {"flan-ul2r (shared prefix)": ours_bbh, "HF transformers generate": hf_bbh}
    outs = {name: run() for name, run in gen.items()}
    x, y = outs.values()
    print(f"  generations identical: {sum(p == q for p, q in zip(x, y))}/{len(x)} prompts; "
          f"tokens equal {sum(i == j for p, q in zip(x, y) for i, j in zip(p, q))}/{sum(len(p) for p in x)}")
    report("BBH 3-shot CoT greedy generation (prompts/s)", len(x), timed(a.rounds, gen), 2)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
