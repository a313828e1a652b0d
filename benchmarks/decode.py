"""Greedy decoding throughput on this machine: flan-ul2r's KV-cache decoding (JAX) with float32 weights and
with bfloat16 weights (`load_model(..., dtype="bfloat16")`: half the bytes read per token) vs HF
transformers `generate` (PyTorch, its own KV cache, float32), the same weights and prompts, measured in the
same run.

    python benchmarks/decode.py [--layers 4 --d_model 512 --batch 8 --prompt 64 --new 128 --rounds 5]

A Llama-style model (the shape of benchmarks/train_step.py, ~20M params, random weights, float32) is built
with transformers, saved as safetensors in a temporary directory and loaded by `flan_ul2r.load_model` -
the same weights on both sides. `--batch` prompts of `--prompt` random tokens (`--mixed`: lengths spread
from half to full, left-padded on both sides) each get exactly `--new` greedy tokens (no EOS stop). Both
are warmed up (compilation) first; then `--rounds` rounds time each contender in turn, so drift of a
shared machine hits all alike, and the median round gives new tokens/s. Prints the figures, the ratios
(target >= 2x) and how many generated tokens agree (bfloat16 rounds the weights, so its greedy tokens may
part from float32's after a while).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def build_hf(args, directory: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=8192, hidden_size=args.d_model, intermediate_size=int(args.d_model * 2.75),
                      num_hidden_layers=args.layers, num_attention_heads=args.d_model // 64,
                      num_key_value_heads=max(1, args.d_model // 128), head_dim=64, rms_norm_eps=1e-5,
                      rope_theta=500_000.0, max_position_embeddings=args.prompt + args.new,
                      attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(directory, safe_serialization=True)
    return model


def prompts_for(args) -> list[list[int]]:
    rng = np.random.default_rng(0)
    lengths = np.full(args.batch, args.prompt)
    if args.mixed:
        lengths = np.linspace(args.prompt // 2, args.prompt, args.batch).astype(int)
    return [rng.integers(3, 8192, size=int(n)).tolist() for n in lengths]


def hf_runner(model, prompts: list[list[int]], new: int):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):  # left padding, as transformers recommends for decoder-only generation
        ids[i, width - len(p):] = torch.as_tensor(p)
        mask[i, width - len(p):] = 1

    def run() -> list[list[int]]:
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                 do_sample=False, eos_token_id=None, pad_token_id=0)
        return out[:, width:].tolist()

    return run


def ours_runner(directory: str, prompts: list[list[int]], new: int, dtype: str = "float32"):
    import flan_ul2r

    model = flan_ul2r.load_model(directory, dtype=dtype)

    def run() -> list[list[int]]:
        out = model.generate_batch(prompts, max_new_tokens=new, stop_at_eos=False, batch_size=len(prompts))
        return [rows[0] for rows in out]

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--mixed", action="store_true", help="prompt lengths from --prompt/2 to --prompt")
    p.add_argument("--torch_threads", type=int, default=0,
                   help="torch intra-op threads (0 = its default, one per core); on a busy machine 1 avoids "
                        "OpenMP threads waiting on each other")
    a = p.parse_args()
    if a.torch_threads:
        import torch

        torch.set_num_threads(a.torch_threads)

    with tempfile.TemporaryDirectory() as d:
        hf_model = build_hf(a, d)
        n_params = sum(x.numel() for x in hf_model.parameters())
        prompts = prompts_for(a)
        runners = {"flan-ul2r (JAX, KV cache), float32": ours_runner(d, prompts, a.new),
                   "flan-ul2r (JAX, KV cache), bfloat16 weights": ours_runner(d, prompts, a.new, "bfloat16"),
                   "HF transformers generate (PyTorch, KV cache)": hf_runner(hf_model, prompts, a.new)}
        print(f"config: Llama-style {a.layers} layers, d_model {a.d_model}, {n_params / 1e6:.1f}M params; "
              f"batch {a.batch}, prompts of {'mixed ' if a.mixed else ''}{a.prompt} tokens, "
              f"{a.new} new tokens, greedy; load average {os.getloadavg()[0]:.2f} (1 min)")
        outputs = {name: run() for name, run in runners.items()}  # warm-up (compilation) + outputs to compare
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(a.rounds):
            for name, run in runners.items():
                time.sleep(0.5)  # let the other framework's worker threads go idle first
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
    tps = {name: a.batch * a.new / float(np.median(t)) for name, t in times.items()}
    for name in runners:
        rounds = ", ".join(f"{a.batch * a.new / t:.0f}" for t in times[name])
        best = a.batch * a.new / min(times[name])
        print(f"{name:46s} {tps[name]:8.0f} new tokens/s median, {best:.0f} best (rounds: {rounds})")
    f32, bf16, theirs = list(tps.values())
    print(f"ratio flan-ul2r float32 / transformers: {f32 / theirs:.2f}x (target >= 2x)")
    print(f"ratio flan-ul2r bfloat16 / transformers: {bf16 / theirs:.2f}x; bfloat16 / float32: "
          f"{bf16 / f32:.2f}x")
    f32_out, bf16_out, hf_out = list(outputs.values())
    pairs = (("float32 vs transformers", f32_out, hf_out), ("bfloat16 vs float32", bf16_out, f32_out))
    for what, a_out, b_out in pairs:
        same = sum(x == y for ra, rb in zip(a_out, b_out) for x, y in zip(ra, rb))
        first = [next((j for j, (x, y) in enumerate(zip(ra, rb)) if x != y), len(ra))
                 for ra, rb in zip(a_out, b_out)]
        print(f"greedy tokens equal, {what}: {same}/{a.batch * a.new}; rows identical to the end: "
              f"{sum(f == a.new for f in first)}/{a.batch} (first difference per row: {first})")


if __name__ == "__main__":
    main()
