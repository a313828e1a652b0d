"""`flan-ul2r convert import-hf | export-hf`: HF safetensors directories <-> flan-ul2r checkpoints.

examples:
  flan-ul2r convert import-hf --hf_dir /models/Llama-3.2-1B --out /ckpt/llama-1b --check
  flan-ul2r convert export-hf --checkpoint /runs/u-llama/checkpoints/20000 --out /models/U-Llama-3.2-1B
      (a non-empty --out is refused unless --overwrite; the export is written beside it and renamed)

Directories may be local or remote (gs://...). No gin: every option is a flag.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from flan_ul2r.errors import exit_code

# MaxText's checkpoint-conversion tests accept a KL up to 0.015; float32 conversions land far below.
MAX_KL = 0.015


def main(argv: Sequence[str]) -> int:
    raw = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="flan-ul2r convert", description=__doc__, formatter_class=raw)
    sub = p.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import-hf", help="HF safetensors directory -> flan-ul2r checkpoint",
                         description=__doc__, formatter_class=raw)
    imp.add_argument("--hf_dir", required=True)
    imp.add_argument("--out", required=True)
    imp.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    imp.add_argument("--sentinel_policy", default="auto", choices=["auto", "append", "last_n"])
    imp.add_argument("--check", action="store_true", help="compare logits with transformers")
    exp = sub.add_parser("export-hf", help="flan-ul2r checkpoint -> HF safetensors directory",
                         description=__doc__, formatter_class=raw)
    exp.add_argument("--checkpoint", required=True)
    exp.add_argument("--out", required=True)
    exp.add_argument("--max_shard_gb", type=float, default=2.0)
    exp.add_argument("--overwrite", action="store_true",
                     help="replace a non-empty --out (written beside it, then renamed into place)")
    a = p.parse_args(list(argv))
    try:
        if a.cmd == "import-hf":
            return _import(a)
        from flan_ul2r.convert.hf_export import export_hf

        for note in export_hf(a.checkpoint, a.out, int(a.max_shard_gb * (1 << 30)), overwrite=a.overwrite):
            print(f"note: {note}", file=sys.stderr)
        print(json.dumps({"exported": a.out}))
        return 0
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"flan-ul2r convert {a.cmd}: {e}", file=sys.stderr)
        return exit_code(e)


def _import(a) -> int:
    from flan_ul2r.convert.hf_import import import_hf

    cfg, vocab = import_hf(a.hf_dir, a.out, a.dtype, a.sentinel_policy)
    report = {"out": a.out, "num_params": cfg.num_params(), "vocab_size": cfg.vocab_size,
              "appended_ids": len(vocab.get("appended_ids", []))}
    if a.check:
        from flan_ul2r.checkpoint_io import restore_params
        from flan_ul2r.convert.check import compare_logits

        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            print(f"flan-ul2r convert import-hf: --check needs torch and transformers ({e}); not checked",
                  file=sys.stderr)
            print(json.dumps({**report, "check": "skipped"}))
            return 0
        params, _ = restore_params(a.out)
        report.update(compare_logits(a.hf_dir, cfg, params))
        if report["mean_kl"] > MAX_KL:
            print(json.dumps(report))
            print(f"flan-ul2r convert import-hf: logit check failed: mean KL {report['mean_kl']:.4g} > "
                  f"{MAX_KL}", file=sys.stderr)
            return 1
    print(json.dumps(report))
    return 0
