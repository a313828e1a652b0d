"""GSM8K (Cobbe et al. 2021), 8-shot chain-of-thought, scored on the last number (Wei et al. 2022).

Layout (`GSM8K_DIR`, the release's `grade_school_math/data/` folder): `train.jsonl` and `test.jsonl`, one
{"question", "answer"} per line, the answer a worked solution ending "#### N".

Exemplars: Wei et al. 2022 wrote 8 exemplars by hand; those are not in the GSM8K release, so we use the
first 8 problems of `train.jsonl` (a local file), their solutions with the calculator annotations
`<<48/2=24>>` removed and "The answer is N." appended. The prompt is "Q: ...\\nA: ..." blocks, blank-line
separated, then "Q: {question}\\nA:". Score: exact match of the last number with the test answer.
"""
from __future__ import annotations

import re

from flan_ul2r.data.flan_formats import FormatError, read_cot
from flan_ul2r.evaluation.extract import normalize_number
from flan_ul2r.evaluation.files import BenchmarkFileError, require_dir, require_file
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol

NUM_SHOTS = 8  # Wei et al. 2022, GSM8K: 8 exemplars
LAYOUT = "train.jsonl and test.jsonl (GSM8K's grade_school_math/data/)"
PROTOCOL = Protocol("GSM8K-CoT", shape="number", cot=True, max_new_tokens=256, stop_sequences=("\n\nQ:",))
_CALCULATOR = re.compile(r"<<[^>]*>>")


def read_split(gsm8k_dir, split: str) -> list[dict[str, str]]:
    root = require_dir(gsm8k_dir, "GSM8K_DIR", LAYOUT)
    path = require_file(root / f"{split}.jsonl", "GSM8K_DIR", LAYOUT)
    try:
        rows = read_cot(path)
    except FormatError as e:
        raise BenchmarkFileError(str(e)) from None
    for n, r in enumerate(rows, 1):
        if normalize_number(r["answer"]) is None:
            raise BenchmarkFileError(f"{path}: example {n}: final answer {r['answer']!r} is not a number")
        r["rationale"] = " ".join(_CALCULATOR.sub("", r["rationale"]).split())
    return rows


def exemplar(question: str, rationale: str, answer: str) -> str:
    return f"Q: {question}\nA: {rationale} The answer is {answer}."


def load(gsm8k_dir, *, split: str = "test", num_shots: int = NUM_SHOTS) -> list[EvalExample]:
    shots = read_split(gsm8k_dir, "train")[:num_shots]
    head = "".join(exemplar(s["question"], s["rationale"], s["answer"]) + "\n\n" for s in shots)
    return [EvalExample(f"{split}/{i}", f"{head}Q: {r['question']}\nA:", (r["answer"],))
            for i, r in enumerate(read_split(gsm8k_dir, split))]


def tasks(gsm8k_dir) -> list[EvalTask]:
    get = gsm8k_dir if callable(gsm8k_dir) else (lambda: gsm8k_dir)
    return [EvalTask("gsm8k_cot", PROTOCOL, lambda: load(get()))]
