"""Training throughput of one Llama-style config on this machine: flan-ul2r (JAX) vs HF transformers
(PyTorch), the same forward + backward + AdamW step, measured in the same run.

    python benchmarks/train_step.py [--layers 4 --d_model 512 --seq 512 --batch 4 --steps 6 --rounds 3]

Each contender is built and warmed up once; then `--rounds` rounds each time `--steps` steps of every
contender in turn (so drift of a shared machine hits all of them alike), and the median step time gives
tokens/s. Contenders: ours with the layer loop unrolled (the CPU default) and scanned, and HF transformers.
Prints the ratios and each one's MFU against a matmul peak measured in the same run by the same framework
(float32 n x n matmul, the practical peak of this CPU). FLOPs: PaLM appendix B (flan_ul2r.training.compute).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

Runner = Callable[[int], list[float]]  # steps -> per-step seconds


def jax_runner(cfg, batch: int, seq: int) -> Runner:
    import jax

    from flan_ul2r import partitioning
    from flan_ul2r.training import optim
    from flan_ul2r.training.trainer import Trainer

    mesh = partitioning.make_mesh(data=1, fsdp=1, tensor=1, devices=jax.devices()[:1])
    trainer = Trainer(cfg, optim.optimizer("adamw", optim.schedule("constant", 1e-4), clip_norm=None), mesh,
                      partitioning.rules_for("data_parallel"), z_loss=0.0)
    state = [trainer.init_state(0)]
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(batch, seq + 1)).astype(np.int32)
    local = {"decoder_input_tokens": tokens[:, :-1], "decoder_target_tokens": tokens[:, 1:],
             "decoder_loss_weights": np.ones((batch, seq), np.float32),
             "decoder_segment_ids": np.ones((batch, seq), np.int32),
             "decoder_positions": np.broadcast_to(np.arange(seq, dtype=np.int32), (batch, seq)).copy()}
    global_batch = partitioning.global_batch(local, mesh)

    def step() -> None:
        state[0], metrics = trainer.train_step(state[0], global_batch)
        jax.block_until_ready(metrics)

    return _timed_runner(step)


def torch_runner(cfg, batch: int, seq: int) -> Runner:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    hf = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                     num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                     num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.head_dim, rms_norm_eps=cfg.norm_eps,
                     rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
                     max_position_embeddings=seq, attn_implementation="sdpa")
    model = LlamaForCausalLM(hf)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq + 1))
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step() -> None:
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _timed_runner(step)


def _timed_runner(step: Callable[[], None]) -> Runner:
    for _ in range(2):  # compile / allocate, warm up
        step()

    def run(steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        return times

    return run


def torch_matmul_peak(n: int = 2048) -> float:
    import torch

    a = torch.ones(n, n)
    a @ a
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e12


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--skip_torch", action="store_true")
    a = p.parse_args()

    from flan_ul2r.models.config import ModelConfig
    from flan_ul2r.training import compute

    cfg = ModelConfig(vocab_size=8192, num_layers=a.layers, d_model=a.d_model, num_heads=a.d_model // 64,
                      num_kv_heads=max(1, a.d_model // 128), head_dim=64, d_ff=int(a.d_model * 2.75),
                      rope_theta=500_000.0, norm_eps=1e-5)
    flops = compute.train_flops_per_token(cfg, a.seq)
    peaks = {"jax": compute.measure_matmul_peak()}
    print(f"config: Llama-style {cfg.num_layers} layers, d_model {cfg.d_model}, GQA {cfg.num_heads}/"
          f"{cfg.num_kv_heads}, d_ff {cfg.d_ff}, vocab {cfg.vocab_size}, {cfg.num_params() / 1e6:.1f}M "
          f"params; batch {a.batch} x seq {a.seq}; float32; {flops / 1e6:.1f} MFLOP/token")
    runners = {"flan-ul2r (JAX), layers unrolled": ("jax", jax_runner(cfg.replace(scan_layers=False), a.batch,
                                                                       a.seq)),
               "flan-ul2r (JAX), layers scanned": ("jax", jax_runner(cfg.replace(scan_layers=True), a.batch,
                                                                      a.seq))}
    if not a.skip_torch:
        runners["HF transformers (PyTorch)"] = ("torch", torch_runner(cfg, a.batch, a.seq))
        peaks["torch"] = torch_matmul_peak()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(a.rounds):
        for name, (_, run) in runners.items():
            times[name] += run(a.steps)
    tps = {name: a.batch * a.seq / float(np.median(t)) for name, t in times.items()}
    for name, (framework, _) in runners.items():
        mfu = compute.mfu(tps[name], flops, peaks[framework])
        print(f"{name:34s} {tps[name]:8.0f} tokens/s  MFU {mfu:6.1%} of {framework}'s measured matmul peak "
              f"{peaks[framework]:.3f} TFLOP/s")
    theirs = tps.get("HF transformers (PyTorch)")
    if theirs:
        for name in list(runners)[:2]:
            print(f"ratio {name} / transformers: {tps[name] / theirs:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
