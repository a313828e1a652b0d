"""Training throughput of one Llama-style config on this machine: flan-ul2r (JAX) vs HF transformers
(PyTorch), the same forward + backward + AdamW step, measured in the same run.

    python benchmarks/train_step.py [--layers 4 --d_model 512 --seq 512 --batch 4 --steps 10]

Prints tokens/s of both (ours with scanned and with unrolled layers), the ratios, and each one's MFU against
a matmul peak measured in the same run (float32 n x n matmul, the practical peak of this CPU). FLOPs: PaLM
appendix B (flan_ul2r.compute). Both sides time `--steps` steps after 2 warm-up steps.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def bench_jax(cfg, batch: int, seq: int, steps: int) -> float:
    import jax

    from flan_ul2r import optim, partitioning
    from flan_ul2r.trainer import Trainer

    mesh = partitioning.make_mesh(data=1, fsdp=1, tensor=1, devices=jax.devices()[:1])
    trainer = Trainer(cfg, optim.optimizer("adamw", optim.schedule("constant", 1e-4), clip_norm=None), mesh,
                      partitioning.rules_for("data_parallel"), z_loss=0.0)
    state = trainer.init_state(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, size=(batch, seq + 1)).astype(np.int32)
    local = {"decoder_input_tokens": tokens[:, :-1], "decoder_target_tokens": tokens[:, 1:],
             "decoder_loss_weights": np.ones((batch, seq), np.float32),
             "decoder_segment_ids": np.ones((batch, seq), np.int32),
             "decoder_positions": np.broadcast_to(np.arange(seq, dtype=np.int32), (batch, seq)).copy()}
    gb = partitioning.global_batch(local, mesh)
    for _ in range(2):  # compile + warm up
        state, m = trainer.train_step(state, gb)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = trainer.train_step(state, gb)
    jax.block_until_ready(m)
    return batch * seq * steps / (time.perf_counter() - t0)


def bench_torch(cfg, batch: int, seq: int, steps: int) -> float:
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

    def step():
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * seq * steps / (time.perf_counter() - t0)


def torch_matmul_peak(n: int = 2048) -> float:
    import torch

    a = torch.ones(n, n)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(5))
    return 2.0 * n**3 / best / 1e12


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--skip_torch", action="store_true")
    a = p.parse_args()

    from flan_ul2r import compute
    from flan_ul2r.models.config import ModelConfig

    cfg = ModelConfig(vocab_size=8192, num_layers=a.layers, d_model=a.d_model, num_heads=a.d_model // 64,
                      num_kv_heads=max(1, a.d_model // 128), head_dim=64, d_ff=int(a.d_model * 2.75),
                      rope_theta=500_000.0, norm_eps=1e-5, scan_layers=True)
    flops = compute.train_flops_per_token(cfg, a.seq)
    peak_jax = compute.measure_matmul_peak()
    print(f"config: Llama-style {cfg.num_layers} layers, d_model {cfg.d_model}, GQA {cfg.num_heads}/"
          f"{cfg.num_kv_heads}, d_ff {cfg.d_ff}, vocab {cfg.vocab_size}, {cfg.num_params() / 1e6:.1f}M "
          f"params; batch {a.batch} x seq {a.seq}; float32; {flops / 1e6:.1f} MFLOP/token")
    ours = {}
    for scan in (True, False):
        ours[scan] = bench_jax(cfg.replace(scan_layers=scan), a.batch, a.seq, a.steps)
        mfu = compute.mfu(ours[scan], flops, peak_jax)
        print(f"flan-ul2r (JAX) scan_layers={scan!s:5} {ours[scan]:8.0f} tokens/s  MFU {mfu:6.1%} "
              f"of the measured matmul peak {peak_jax:.3f} TFLOP/s")
    if a.skip_torch:
        return
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    theirs = bench_torch(cfg, a.batch, a.seq, a.steps)
    peak_torch = torch_matmul_peak()
    theirs_mfu = compute.mfu(theirs, flops, peak_torch)
    print(f"HF transformers (torch)        {theirs:8.0f} tokens/s  MFU {theirs_mfu:6.1%} "
          f"of torch's matmul peak {peak_torch:.3f} TFLOP/s")
    for scan, tps in ours.items():
        print(f"ratio flan-ul2r (scan_layers={scan}) / transformers: {tps / theirs:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
