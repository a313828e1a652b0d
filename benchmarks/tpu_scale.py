"""Per-chip memory, predicted tokens/s and collectives of the real train step across TPU slice sizes,
compiled ahead of time on this (CPU) machine through libtpu (`pip install -e .[tpu-compile]`).

    python benchmarks/tpu_scale.py                        # llama3_8b, v5p 8..256 chips, both loss paths
    python benchmarks/tpu_scale.py --layers 4 --topologies v5p:2x2x1 v5p:2x2x2 --loss dense
    python benchmarks/tpu_scale.py --model llama3_70b --rules fsdp_tensor --tensor 4 --topologies v5p-512
    python benchmarks/tpu_scale.py --topologies v5p-64 --loss chunked --optimizer adamw --seq 2560 \
        --inputs 2048 --attention splash --remat full save_qkv_proj offload_qkv_proj   # Flan, remat table

Each row is one `training.aot.compile_train_step` of `--per_chip_batch` sequences of `--seq` tokens per
chip (global batch = chips x per_chip_batch), bfloat16 compute, `lax.scan` over the layers, full remat,
Adafactor (the issue-14 setup); `--inputs` sets the prefix length (default half: UL2R; 0: causal LM),
`--attention` the kernel, `--remat` one or more policies (models/remat.py). Prints a markdown table (and JSON
lines with `--json FILE`) with the recompute FLOPs each policy adds (training/compute.py) and, per loss
path, the ratio of the largest to the smallest per-chip memory: FSDP memory per chip at constant per-chip
batch must stay flat (<= 1.10) or fall. Compile times are those of this machine.
"""
from __future__ import annotations

import argparse
import json
import sys

V5P_SWEEP = ("v5p:2x2x2", "v5p:2x2x4", "v5p:2x4x4", "v5p:4x4x4", "v5p:4x4x8", "v5p:8x8x4")


def run_config(args: argparse.Namespace, chips: int, chunked: bool, remat: str):
    from flan_ul2r.models.config import preset
    from flan_ul2r.training.config import MeshConfig, ModelSpec, OptimizerConfig, RunConfig

    overrides = {"num_layers": args.layers} if args.layers else {}
    shape = preset(args.model, **overrides)
    inputs = args.seq // 2 if args.inputs is None else args.inputs  # UL2R: half inputs (U-PaLM section 2.2)
    lengths = {"inputs": inputs, "targets": args.seq - inputs} if inputs else {"targets": args.seq}
    return RunConfig(
        model_dir="/nonexistent/compile_only", mixture_or_task_name="ul2r", task_feature_lengths=lengths,
        train_steps=1000, batch_size=chips * args.per_chip_batch,
        model=ModelSpec(shape=shape, dtype="bfloat16", remat_policy=remat, scan_layers=True,
                        attention_impl=args.attention),
        mesh=MeshConfig(data=1, fsdp=-1, tensor=args.tensor, rules=args.rules),
        optimizer=OptimizerConfig(name=args.optimizer), num_microbatches=args.microbatches,
        chunked_loss=chunked)


def row(report, chunked: bool, model_cfg) -> dict:
    from flan_ul2r.training import compute

    c = report.collectives
    gib = 2**30
    tokens = report.batch_size * report.sequence_length
    recompute = compute.recompute_flops_per_token(model_cfg, report.sequence_length, report.remat_policy)
    return {"target": report.target.split(" ")[0], "chips": report.chips,
            "loss": "chunked" if chunked else "dense", "batch": report.batch_size,
            "attention": report.attention_impl, "remat": report.remat_policy,
            "recompute_flops_per_step": recompute * tokens,
            "recompute_share": recompute * tokens / report.flops_per_step,
            "arguments_gib": report.argument_bytes / gib, "temporaries_gib": report.temp_bytes / gib,
            "total_gib": report.total_bytes / gib, "host_gib": report.host_temp_bytes / gib,
            "tokens_per_s_per_chip_50pct": report.tokens_per_second_per_chip(0.5),
            "collectives": {k: c.counts[k] for k in c.counts if c.counts[k]},
            "collective_gib": {k: round(c.bytes[k] / gib, 2) for k in c.bytes if c.bytes[k]},
            "compile_s": report.compile_seconds}


def print_table(rows: list[dict]) -> None:
    print("| slice | chips | loss | attention | remat | global batch | args GiB | temps GiB | total GiB/chip "
          "| recompute FLOPs/step (share of 6N+12LHQT) | tok/s/chip @50% MFU "
          "| collectives per step (count, GiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        coll = ", ".join(f"{k} {n} ({r['collective_gib'].get(k, 0):.1f})"
                         for k, n in r["collectives"].items())
        print(f"| {r['target']} | {r['chips']} | {r['loss']} | {r['attention']} | {r['remat']} | "
              f"{r['batch']} | {r['arguments_gib']:.2f} | {r['temporaries_gib']:.2f} | "
              f"{r['total_gib']:.2f} | "
              f"{r['recompute_flops_per_step']:.3g} ({r['recompute_share']:.0%}) | "
              f"{r['tokens_per_s_per_chip_50pct']:,.0f} | {coll} |")
    for loss in ("dense", "chunked"):
        totals = [r["total_gib"] for r in rows if r["loss"] == loss]
        if len(totals) > 1:
            print(f"{loss}: max/first per-chip memory = {max(totals) / totals[0]:.3f} "
                  f"({totals[0]:.2f} -> {totals[-1]:.2f} GiB; flat within 10% or falling: "
                  f"{'yes' if max(totals) <= 1.10 * totals[0] else 'NO'})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="llama3_8b")
    p.add_argument("--layers", type=int, default=0, help="override the preset's layer count (0 = keep)")
    p.add_argument("--topologies", nargs="+", default=list(V5P_SWEEP))
    p.add_argument("--loss", choices=("dense", "chunked", "both"), default="both")
    p.add_argument("--rules", default="fsdp")
    p.add_argument("--tensor", type=int, default=1)
    p.add_argument("--per_chip_batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--remat", nargs="+", default=["full"], help="remat policies (models/remat.py)")
    p.add_argument("--attention", default="auto", help="ModelSpec.attention_impl (auto: splash on TPU)")
    p.add_argument("--inputs", type=int, default=None, help="prefix length (default seq // 2; 0: causal LM)")
    p.add_argument("--optimizer", default="adafactor")
    p.add_argument("--microbatches", type=int, default=1)
    p.add_argument("--json", default=None, help="append one JSON line per compile to this file")
    args = p.parse_args()

    from flan_ul2r.training import tpu_topology

    tpu_topology.quiet_libtpu()  # before JAX starts its backends (no libtpu warnings on a CPU machine)
    from flan_ul2r.training import aot

    losses = {"dense": (False,), "chunked": (True,), "both": (False, True)}[args.loss]
    rows = []
    for topology in args.topologies:
        chips = tpu_topology.parse_slice(topology).chips
        for chunked, remat in ((c, r) for c in losses for r in args.remat):
            cfg = run_config(args, chips, chunked, remat)
            try:
                report = aot.compile_train_step(cfg, cfg.model.resolve(None), topology)
            except Exception as e:  # one failing policy (e.g. no host memory) must not lose the others
                print(f"{topology} remat={remat}: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
                continue
            rows.append(row(report, chunked, cfg.model.resolve(None)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({**rows[-1], "model": args.model, "layers": args.layers,
                                        "rules": args.rules, "tensor": args.tensor, "seq": args.seq,
                                        "inputs": args.inputs, "optimizer": args.optimizer}) + "\n")
    rows.sort(key=lambda r: (r["loss"], r["chips"], r["total_gib"]))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
