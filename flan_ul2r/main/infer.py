"""`flan-ul2r infer`: prompts from a file or stdin -> one JSON line of completions per prompt.

    flan-ul2r infer --checkpoint /runs/u-llama/checkpoints/20000 --mode s2s --input prompts.txt
    echo 'The <extra_id_0> brown fox' | flan-ul2r infer --checkpoint DIR --infill --mode nlu

Input: one prompt per line (empty lines skipped), or JSONL with a `prompt` field (a file ending in .jsonl,
or lines starting with `{`). Output, per prompt: `{"prompt", "mode", "completions": [text per sample],
"prompt_tokens", "completion_tokens": [per sample]}`; with `--infill` also `"spans"` (per sample, the text
for each sentinel) and the completions are the prompt with the spans filled in.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from flan_ul2r import fs

_SENTINEL = re.compile(r"<extra_id_\d+>")
EXAMPLE = """examples:
  printf 'The capital of France is\\n' | flan-ul2r infer --checkpoint /ckpt/u-llama --mode s2s
  flan-ul2r infer --checkpoint MODEL_DIR/checkpoints/2000 --infill --input blanks.jsonl
  flan-ul2r infer --checkpoint DIR --input q.txt --temperature 0.7 --top_p 0.9 --num_samples 4 --stop Q:
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flan-ul2r infer", epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Complete (or infill) prompts with a checkpoint; prints JSON "
                                            "lines.")
    p.add_argument("--checkpoint", required=True, help="our checkpoint (params-only dir or "
                   "MODEL_DIR/checkpoints/<step>) or an HF safetensors directory")
    p.add_argument("--mode", choices=["s2s", "nlu", "nlg", "causal"], default=None,
                   help="U-PaLM mode token (bidirectional prompt) or causal; default: none, the checkpoint's "
                        "encoding (--infill defaults to nlu)")
    p.add_argument("--input", default="-", help="prompt file (text lines or JSONL with `prompt`), - = stdin")
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top_k", type=int, default=0, help="0 = off")
    p.add_argument("--top_p", type=float, default=1.0, help="1 = off")
    p.add_argument("--num_samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", nargs="*", default=[], help="stop strings (matched on the generated text)")
    p.add_argument("--infill", action="store_true", help="fill the <extra_id_N> sentinels of each prompt")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    return p


def read_prompts(stream: TextIO, name: str) -> Iterator[str]:
    """Prompts of a text or JSONL stream; ValueError naming the line for a bad JSON line."""
    jsonl = name.endswith(".jsonl")
    for number, line in enumerate(stream, 1):
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if jsonl or text.lstrip().startswith("{"):
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{name}:{number}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise ValueError(f"{name}:{number}: expected an object with a string field 'prompt'")
            text = row["prompt"]
        yield text


def _fill(text: str, spans: Sequence[str]) -> str:
    """The prompt with its sentinels replaced by the spans, in order (a sentinel the mode appended: at the
    end)."""
    if not _SENTINEL.search(text):
        return text + (spans[0] if spans else "")
    parts = iter(spans)
    return _SENTINEL.sub(lambda _: next(parts, ""), text)


def _rows(model: Any, prompts: list[str], a: argparse.Namespace) -> Iterator[dict[str, Any]]:
    sampling = dict(max_new_tokens=a.max_new_tokens, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                    num_samples=a.num_samples, seed=a.seed, batch_size=a.batch_size)
    mode = a.mode or ("nlu" if a.infill else None)
    if a.infill:
        from flan_ul2r.decoding.infill import infill_prompt

        outputs = model.infill_detailed(prompts, mode=mode, progress=True, **sampling)
        for prompt, samples in zip(prompts, outputs):
            yield {"prompt": prompt, "mode": mode, "completions": [_fill(prompt, s.spans) for s in samples],
                   "spans": [s.spans for s in samples],
                   "prompt_tokens": len(infill_prompt(model.vocab, prompt, mode)[0]),
                   "completion_tokens": [len(s.token_ids) for s in samples]}
        return
    outputs = model.complete_detailed(prompts, mode=mode, stop_sequences=a.stop, progress=True, **sampling)
    for prompt, samples in zip(prompts, outputs):
        yield {"prompt": prompt, "mode": mode, "completions": [s.text for s in samples],
               "prompt_tokens": len(model.encode_prompt(prompt, mode)),
               "completion_tokens": [len(s.token_ids) for s in samples]}


def main(argv: Sequence[str]) -> int:
    a = _parser().parse_args(list(argv))
    try:
        if a.input == "-":
            prompts = list(read_prompts(sys.stdin, "<stdin>"))
        else:
            with fs.path(a.input).open(encoding="utf-8") as f:
                prompts = list(read_prompts(f, a.input))
        if not prompts:
            print(f"flan-ul2r infer: no prompts in {a.input}", file=sys.stderr)
            return 1
        from flan_ul2r.api import load_model

        model = load_model(a.checkpoint, dtype=a.dtype)
        for row in _rows(model, prompts, a):
            print(json.dumps(row, ensure_ascii=False), flush=True)
        return 0
    except (ValueError, FileNotFoundError) as e:
        from flan_ul2r.errors import exit_code

        print(f"flan-ul2r infer: {e}", file=sys.stderr)
        return exit_code(e)
