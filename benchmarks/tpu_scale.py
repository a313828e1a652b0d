"""Per-chip memory, predicted tokens/s and collectives of the real train step across TPU slice sizes,
compiled ahead of time on this (CPU) machine through libtpu (`pip install -e .[tpu-compile]`).

    python benchmarks/tpu_scale.py                        # llama3_8b, v5p 8..256 chips, both loss paths
    python benchmarks/tpu_scale.py --layers 4 --topologies v5p:2x2x1 v5p:2x2x2 --loss dense
    python benchmarks/tpu_scale.py --model llama3_70b --rules fsdp_tensor --tensor 4 --topologies v5p-512

Each row is one `training.aot.compile_train_step` of `--per_chip_batch` sequences of `--seq` tokens per
chip (global batch = chips x per_chip_batch), bfloat16 compute, `lax.scan` over the layers, full remat,
Adafactor (the issue-14 setup). Prints a markdown table (and JSON lines with `--json FILE`) and, per loss
path, the ratio of the largest to the smallest per-chip memory: FSDP memory per chip at constant per-chip
batch must stay flat (<= 1.10) or fall. Compile times are those of this machine.
"""
from __future__ import annotations

import argparse
import json
import sys

V5P_SWEEP = ("v5p:2x2x2", "v5p:2x2x4", "v5p:2x4x4", "v5p:4x4x4", "v5p:4x4x8", "v5p:8x8x4")


def run_config(args: argparse.Namespace, chips: int, chunked: bool):
    from flan_ul2r.models.config import preset
    from flan_ul2r.training.config import MeshConfig, ModelSpec, OptimizerConfig, RunConfig

    overrides = {"num_layers": args.layers} if args.layers else {}
    shape = preset(args.model, **overrides)
    half = args.seq // 2  # UL2R: inputs + targets (U-PaLM section 2.2)
    return RunConfig(
        model_dir="/nonexistent/compile_only", mixture_or_task_name="ul2r",
        task_feature_lengths={"inputs": half, "targets": args.seq - half}, train_steps=1000,
        batch_size=chips * args.per_chip_batch,
        model=ModelSpec(shape=shape, dtype="bfloat16", remat_policy=args.remat, scan_layers=True),
        mesh=MeshConfig(data=1, fsdp=-1, tensor=args.tensor, rules=args.rules),
        optimizer=OptimizerConfig(name="adafactor"), num_microbatches=args.microbatches, chunked_loss=chunked)


def row(report, chunked: bool) -> dict:
    c = report.collectives
    gib = 2**30
    return {"target": report.target.split(" ")[0], "chips": report.chips,
            "loss": "chunked" if chunked else "dense", "batch": report.batch_size,
            "arguments_gib": report.argument_bytes / gib, "temporaries_gib": report.temp_bytes / gib,
            "total_gib": report.total_bytes / gib,
            "tokens_per_s_per_chip_50pct": report.tokens_per_second_per_chip(0.5),
            "collectives": {k: c.counts[k] for k in c.counts if c.counts[k]},
            "collective_gib": {k: round(c.bytes[k] / gib, 2) for k in c.bytes if c.bytes[k]},
            "compile_s": report.compile_seconds}


def print_table(rows: list[dict]) -> None:
    print("| slice | chips | loss | global batch | args GiB | temps GiB | total GiB/chip "
          "| tok/s/chip @50% MFU | collectives per step (count, GiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        coll = ", ".join(f"{k} {n} ({r['collective_gib'].get(k, 0):.1f})"
                         for k, n in r["collectives"].items())
        print(f"| {r['target']} | {r['chips']} | {r['loss']} | {r['batch']} | {r['arguments_gib']:.2f} | "
              f"{r['temporaries_gib']:.2f} | {r['total_gib']:.2f} | "
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
    p.add_argument("--remat", default="full")
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
        for chunked in losses:
            report = aot.compile_train_step(run_config(args, chips, chunked),
                                             run_config(args, chips, chunked).model.resolve(None), topology)
            rows.append(row(report, chunked))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({**rows[-1], "model": args.model, "layers": args.layers,
                                        "rules": args.rules, "tensor": args.tensor}) + "\n")
    rows.sort(key=lambda r: (r["loss"], r["chips"]))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
