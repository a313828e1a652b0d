"""`flan-ul2r inspect`: print examples of a seqio task or mixture as JSON lines, or a vocabulary.
No gin macro is required; --gin_file=F / --gin.NAME=VALUE configure tasks as in `train`.

examples:
  flan-ul2r inspect --task ul2r [--split train] [--num 5] [--seed 0] [--sequence_length 512]
  flan-ul2r inspect --task ul2r --packed --batch_size 2 --sequence_length 512
  flan-ul2r inspect --module my_tasks --task my_task      # a module that registers seqio tasks
  flan-ul2r inspect --vocab byte

Any seqio Task or Mixture works: the built-in ones, or the user's, registered by `--module NAME` or by
`--gin.MIXTURE_OR_TASK_MODULE=NAME` (with gin files, as `train` takes them).
Examples come from the same draw stream the trainer reads (`data.loader`), so `--seed` gives
exactly the training examples. `--sequence_length` is the model length (inputs + targets, split in
halves as U-PaLM's 1024/1024, section 2.2). Each row carries `inputs`, `targets` (token ids),
`inputs_text`, `targets_text`, `draw` and every scalar string feature of the example (`denoiser`,
`task`, `style`, ...). `--packed` prints one object per batch row with the converted features.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from typing import Any

from flan_ul2r.gin_utils import import_task_modules, parse_gin, split_gin_args


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flan-ul2r inspect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="seqio task or mixture name")
    p.add_argument("--module", action="append", default=[],
                   help="module that registers tasks (repeatable; as --gin.MIXTURE_OR_TASK_MODULE=...)")
    p.add_argument("--vocab", help="vocabulary spec: byte | sentencepiece:PATH | hf:PATH")
    p.add_argument("--split", default="train")
    p.add_argument("--num", type=int, default=5, help="examples (or batches with --packed) to print")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sequence_length", type=int, default=512, help="model length = inputs + targets")
    p.add_argument("--packed", action="store_true", help="print packed, converted batch rows")
    p.add_argument("--batch_size", type=int, default=2)
    return p


def _decode(vocab: Any, ids: Sequence[int]) -> str:
    try:
        return str(vocab.decode([int(i) for i in ids]))
    except Exception as e:  # a vocabulary that cannot decode some id still shows the ids
        return f"<decode error: {e}>"


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def main(argv: Sequence[str]) -> int:
    gin_files, bindings, rest = split_gin_args(argv)
    args = _parser().parse_args(rest)
    import flan_ul2r.tasks

    flan_ul2r.tasks.import_all()  # registers gin configurables before gin parses (then locks)
    try:
        if gin_files or bindings:
            parse_gin(gin_files, bindings)
            from flan_ul2r.tasks import register_after_gin

            register_after_gin()  # the gin-chosen corpus / vocabulary / denoisers / Flan rates
            import_task_modules()  # MIXTURE_OR_TASK_MODULE (after the built-ins it may mix with)
        import_task_modules(args.module, flag="--module")
    except ValueError as e:
        print(f"flan-ul2r inspect: {e}", file=sys.stderr)
        return 2
    if args.vocab:
        from flan_ul2r.data.vocab.vocabularies import get_vocabulary

        print(json.dumps(get_vocabulary(args.vocab).describe(), default=str))
        return 0
    if not args.task:
        print("flan-ul2r inspect: give --task NAME or --vocab SPEC", file=sys.stderr)
        return 2
    for flag, value, low in (("--num", args.num, 0), ("--batch_size", args.batch_size, 1),
                             ("--sequence_length", args.sequence_length, 4)):
        if value < low:
            print(f"flan-ul2r inspect: {flag}={value} must be >= {low}", file=sys.stderr)
            return 2

    from flan_ul2r.data.core import loader, registry

    half = args.sequence_length // 2
    lengths = {"inputs": half, "targets": args.sequence_length - half}
    try:
        vocab = registry.task_vocabulary(args.task, args.split, flag="--task")
        it = loader.make_train_iterator(args.task, lengths, args.batch_size, seed=args.seed,
                                        split=args.split, with_strings=not args.packed)
    except ValueError as e:
        print(f"flan-ul2r inspect: {e}", file=sys.stderr)
        return 2
    if args.packed:
        for b, batch in enumerate(itertools.islice(it, args.num)):
            for r in range(args.batch_size):
                row = {"batch": b, "row": r, **{k: v[r].tolist() for k, v in batch.items()}}
                print(json.dumps(row))
        return 0
    for ex in itertools.islice(it.examples(), args.num):
        row = {"draw": int(ex["draw"]), "inputs": ex["inputs"].tolist(), "targets": ex["targets"].tolist(),
               "inputs_text": _decode(vocab, ex["inputs"]), "targets_text": _decode(vocab, ex["targets"])}
        row.update({k: _text(v) for k, v in ex.items() if isinstance(v, bytes)})
        print(json.dumps(row))
    return 0
