"""Does the training loop keep the devices busy? The loop's tokens/s against bare jitted steps on the same
batches, on Flan data (`flan` mixture) with a BPE tokenizer, measured in the same run.

    python benchmarks/train_loop.py [--steps 16 --rounds 3 --batch 8 --inputs 256 --targets 128]

- Tokenizer: a byte-level BPE `tokenizer.json` trained here with `tokenizers` on the default corpus (the
  stdlib documentation, data/corpus/default_corpus.py), cached under $FLAN_UL2R_CACHE/bench; the Flan
  tasks encode through it (`ul2r_corpus.vocabulary = "hf:DIR"`).
- Bare steps: the batches are packed beforehand and already on the devices; nothing but
  `trainer.train_step` calls and reading each step's metrics one step late. This is the device's pace,
  the loop's ceiling.
- The loop: `flan_ul2r.training.loop.train_loop` as `flan-ul2r train` runs it (background prefetching of
  tf.data + packing + device_put, metrics read one step late and logged every step, metrics.jsonl,
  TensorBoard).
- Both are timed the same way, over steps 2..N: from reading step 1's metrics to reading step N's (the
  loop's own step clock, whose per-step figures land in metrics.jsonl).
- Rounds alternate the order (bare first, then loop first, ...) so a shared machine's drift hits both
  alike; medians are reported.
On a CPU, host packing and the "device" share the same cores, so the ratio there understates what an
accelerator gets (where the host thread runs beside the device).
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bpe_tokenizer_dir(vocab_size: int) -> str:
    """A byte-level BPE tokenizer trained on the default corpus (cached)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from flan_ul2r.data.corpus.default_corpus import default_corpus_documents
    from flan_ul2r.data.corpus.token_cache import cache_dir

    folder = cache_dir() / "bench" / f"bpe-{vocab_size}"
    if (folder / "tokenizer.json").is_file():
        return str(folder)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t0 = time.perf_counter()
    tok.train_from_iterator(default_corpus_documents(), trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}))
    print(f"trained a {vocab_size}-token BPE tokenizer in {time.perf_counter() - t0:.1f}s -> {folder}")
    return str(folder)


def setup(args: argparse.Namespace):
    """(RunConfig, Trainer) for a Llama-style model on the `flan` mixture through the BPE vocabulary."""
    import flan_ul2r.tasks
    from flan_ul2r.gin_utils import parse_gin
    from flan_ul2r.models.config import preset
    from flan_ul2r.training.config import CheckpointConfig, ModelSpec, OptimizerConfig, RunConfig
    from flan_ul2r.training.run import task_vocabulary
    from flan_ul2r.training.trainer import Trainer

    flan_ul2r.tasks.import_all()
    parse_gin([], [f"ul2r_corpus.vocabulary='hf:{bpe_tokenizer_dir(args.vocab_size)}'"], finalize=False)
    flan_ul2r.tasks.register_after_gin()
    vocab = task_vocabulary("flan")
    shape = preset("tiny", vocab_size=-(-int(vocab.vocab_size) // 128) * 128, num_layers=args.layers,
                   d_model=args.d_model, num_heads=args.d_model // 64, num_kv_heads=args.d_model // 128,
                   head_dim=64, d_ff=args.d_model * 3)
    cfg = RunConfig(model_dir="unused", mixture_or_task_name="flan",
                    task_feature_lengths={"inputs": args.inputs, "targets": args.targets},
                    train_steps=10**9, batch_size=args.batch, model=ModelSpec(shape=shape),
                    optimizer=OptimizerConfig(name="adamw", learning_rate=1e-4),
                    checkpoint=CheckpointConfig(period=10**9), stop_after_steps=args.steps, progress=False)
    mesh, rules = cfg.mesh.build()
    tx, lr = cfg.optimizer.build(cfg.train_steps)
    trainer = Trainer(cfg.model.resolve(None), tx, mesh, rules, learning_rate_fn=lr)
    print(f"model: {shape.num_params() / 1e6:.1f}M params, vocab {shape.vocab_size}; batch {args.batch} x "
          f"({args.inputs} + {args.targets}) tokens; {args.steps} steps per round")
    return cfg, trainer


def bare_steps(cfg, trainer, state):
    """tokens/s of `train_step` alone on batches packed and placed beforehand, by the loop's clock: the
    time between reading the metrics of step 1 and of step N (each read one step late, as the loop does)."""
    import jax

    from flan_ul2r import partitioning
    from flan_ul2r.training.loop import make_data

    data = make_data(cfg, None)
    batches = [partitioning.global_batch(next(data), trainer.mesh) for _ in range(cfg.stop_after_steps)]
    del data  # stops tf.data's own background prefetching, which would compete with the timed steps
    gc.collect()
    jax.block_until_ready(batches)
    stamps, previous = [], None
    for batch in batches:
        state, metrics = trainer.train_step(state, batch)
        if previous is not None:
            jax.device_get(previous)
            stamps.append(time.perf_counter())
        previous = metrics
    jax.device_get(previous)
    stamps.append(time.perf_counter())
    tokens = sum(int(b["decoder_input_tokens"].size) for b in batches[1:])
    return tokens / (stamps[-1] - stamps[0]), state


def loop_steps(cfg, trainer, state):
    """tokens/s of the training loop over steps 2..N, by its own step clock (metrics.jsonl)."""
    import dataclasses

    from flan_ul2r.training import checkpoints
    from flan_ul2r.training.loop import train_loop
    from flan_ul2r.training.metrics import read_metrics

    with tempfile.TemporaryDirectory() as model_dir:
        start = int(state.step)
        run = dataclasses.replace(cfg, model_dir=model_dir, stop_after_steps=start + cfg.stop_after_steps)
        ckpts = checkpoints.TrainCheckpoints(model_dir, period=10**9, async_save=True)
        result = train_loop(run, trainer, ckpts, state, None)
        rows = read_metrics(os.path.join(model_dir, "metrics.jsonl"))[1:]
    tokens = sum(r["tokens_per_second"] * r["step_seconds"] for r in rows)
    return tokens / sum(r["step_seconds"] for r in rows), result.state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--targets", type=int, default=128)
    p.add_argument("--vocab_size", type=int, default=8000)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d_model", type=int, default=256)
    args = p.parse_args()
    import jax

    cfg, trainer = setup(args)
    state = trainer.init_state(0)
    bare, loop = [], []
    _, state = bare_steps(cfg, trainer, state)  # warm-up: compiles the step (both donation variants later)
    for r in range(args.rounds):
        for contender in ((bare_steps, loop_steps) if r % 2 == 0 else (loop_steps, bare_steps)):
            tps, state = contender(cfg, trainer, state)
            (bare if contender is bare_steps else loop).append(tps)
        print(f"round {r + 1}: bare steps {bare[-1]:,.0f} tokens/s, training loop {loop[-1]:,.0f} tokens/s "
              f"({loop[-1] / bare[-1]:.3f})")
    b, lo = statistics.median(bare), statistics.median(loop)
    per_round = statistics.median(x / y for x, y in zip(loop, bare))
    print(f"median over {args.rounds} rounds on {jax.devices()[0].platform} ({jax.device_count()} devices): "
          f"bare steps {b:,.0f} tokens/s, training loop {lo:,.0f} tokens/s, ratio {lo / b:.3f} "
          f"(median of the per-round ratios {per_round:.3f}; target >= 0.95)")


if __name__ == "__main__":
    main()
