"""Our train step and MaxText's `train_compile` for the same config, compiled ahead of time for a TPU slice on
this (CPU) machine, memory per chip side by side.

MaxText is never a dependency of ours: it lives in its own virtualenv (it needs Python >= 3.12 and jax >=
0.11), e.g. with pyenv's Python 3.12:

    python3.12 -m venv .venv-maxtext && .venv-maxtext/bin/pip install "maxtext[tpu]==0.2.5" "jax[tpu]==0.11.2"
    .venv-maxtext/bin/pip install --no-deps -e .        # optional: our step under the same jax/libtpu
    python benchmarks/vs_maxtext.py --maxtext_python .venv-maxtext/bin/python \\
        [--ours_python .venv-maxtext/bin/python] --topology v5p-64 --seq 2048 --attention splash

The config is MaxText's comparison ground: a causal LM (MaxText has no prefix-LM), Llama-3-8B, one
`--seq`-token sequence per chip, AdamW, bf16 compute with float32 weights, pure FSDP, `--remat`. Attention:
ours `splash` <-> MaxText `flash` (its Pallas splash kernel on TPU), ours `xla` <-> MaxText `dot_product`.
Each side runs in its own process (`--ours_python`, default this interpreter; `--maxtext_python`), and
prints its jax and libtpu versions: figures compare only when both used the same ones. MaxText's memory
comes from the `Memory analysis: CompiledMemoryStats(...)` line its train_compile prints.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30
MAXTEXT_ATTENTION = {"splash": "flash", "xla": "dot_product"}
MAXTEXT_REMAT = {
    "full": "full",
    "dots_with_no_batch_dims_saveable": "minimal",
    "save_qkv_proj": "save_qkv_proj",
    "offload_qkv_proj": "qkv_proj_offloaded",
    "offload_dots_with_no_batch_dims": "minimal_offloaded",
    "none": "minimal_with_context",
}
VERSIONS = (
    "import importlib.metadata as m; print('VERSIONS', json.dumps({p: m.version(p) for p in "
    "('jax', 'jaxlib', 'libtpu')}))"
)


def versions(python: str) -> dict[str, str]:
    out = subprocess.run(
        [python, "-c", "import json; " + VERSIONS], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.split("VERSIONS ", 1)[1])


def ours(args: argparse.Namespace) -> dict[str, float]:
    """Our step through benchmarks/tpu_scale.py (one compile), in `--ours_python`."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.jsonl"
        cmd = [
            args.ours_python,
            str(ROOT / "benchmarks" / "tpu_scale.py"),
            "--topologies",
            args.topology,
            "--seq",
            str(args.seq),
            "--inputs",
            "0",
            "--optimizer",
            "adamw",
            "--attention",
            args.attention,
            "--remat",
            args.remat,
            "--loss",
            args.loss,
            "--json",
            str(rows),
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if run.returncode or not rows.exists():
            raise SystemExit(
                f"our compile failed ({' '.join(cmd)}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
            )
        row = json.loads(rows.read_text().splitlines()[-1])
    return {
        "arguments": row["arguments_gib"],
        "temporaries": row["temporaries_gib"],
        "total": row["total_gib"],
        "compile_s": row["compile_s"],
    }


def maxtext_command(args: argparse.Namespace) -> list[str]:
    base = subprocess.run(
        [args.maxtext_python, "-c", "import maxtext, os; print(os.path.dirname(maxtext.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return [
        args.maxtext_python,
        "-m",
        "maxtext.trainers.pre_train.train_compile",
        f"{base}/configs/base.yml",
        f"compile_topology={args.topology}",
        "compile_topology_num_slices=1",
        "model_name=llama3-8b",
        "per_device_batch_size=1",
        f"max_target_length={args.seq}",
        f"remat_policy={MAXTEXT_REMAT[args.remat]}",
        f"attention={MAXTEXT_ATTENTION[args.attention]}",
        "opt_type=adamw",
        "dtype=bfloat16",
        "weight_dtype=float32",
        "ici_fsdp_parallelism=-1",
        "dataset_type=synthetic",
        "enable_checkpointing=false",
        "run_name=vs_maxtext",
        f"base_output_directory={tempfile.gettempdir()}",
    ]


def maxtext(args: argparse.Namespace) -> dict[str, float]:
    cmd = maxtext_command(args)
    # What libtpu needs on a machine without TPU chips (flan_ul2r/tf_devices.py: quiet_libtpu).
    env = {"TPU_ACCELERATOR_TYPE": args.topology, "TPU_WORKER_HOSTNAMES": "localhost",
           "ALLOW_MULTIPLE_LIBTPU_LOAD": "1", **os.environ}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    text = run.stdout + run.stderr
    stats = dict(re.findall(r"(\w+)_size_in_bytes=(\d+)", text.split("Memory analysis:", 1)[-1]))
    if run.returncode or "argument" not in stats:
        raise SystemExit(f"MaxText's train_compile failed ({' '.join(cmd)}):\n{text[-4000:]}")
    args_b, temp = int(stats["argument"]), int(stats["temp"])
    out_b, alias = int(stats.get("output", 0)), int(stats.get("alias", 0))
    return {
        "arguments": args_b / GIB,
        "temporaries": temp / GIB,
        "total": (args_b + temp + out_b - alias) / GIB,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maxtext_python", required=True, help="the python of MaxText's own virtualenv")
    p.add_argument("--ours_python", default=sys.executable)
    p.add_argument("--topology", default="v5p-64")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--attention", choices=tuple(MAXTEXT_ATTENTION), default="splash")
    p.add_argument("--remat", choices=tuple(MAXTEXT_REMAT), default="full")
    p.add_argument("--loss", choices=("dense", "chunked"), default="chunked")
    args = p.parse_args()
    sides = {"flan-ul2r": (ours, args.ours_python), "MaxText": (maxtext, args.maxtext_python)}
    rows = {}
    for name, (fn, python) in sides.items():
        print(f"compiling {name} ({python}) ...", file=sys.stderr, flush=True)
        rows[name] = {**fn(args), **versions(python)}
    print(
        f"Llama-3-8B causal LM, {args.topology}, 1 x {args.seq} tokens per chip, AdamW, remat {args.remat}, "
        f"attention {args.attention} (MaxText: {MAXTEXT_ATTENTION[args.attention]}); GiB per chip"
    )
    print("| | arguments | temporaries | total | jax | libtpu |")
    print("|---|---:|---:|---:|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['arguments']:.2f} | {r['temporaries']:.2f} | **{r['total']:.2f}** | {r['jax']} | "
            f"{r['libtpu']} |"
        )
    ratio = rows["flan-ul2r"]["total"] / rows["MaxText"]["total"]
    same = all(rows["flan-ul2r"][k] == rows["MaxText"][k] for k in ("jax", "libtpu"))
    print(f"ours / MaxText = {ratio:.3f}" + ("" if same else " (different jax/libtpu: compilers differ)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
