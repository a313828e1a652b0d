"""GSM8K (Cobbe et al. 2021), 8-shot chain-of-thought, scored on the last number (Wei et al. 2022).

Layout (`GSM8K_DIR`, the release's `grade_school_math/data/` folder): `train.jsonl` and `test.jsonl`, one
{"question", "answer"} per line, the answer a worked solution ending "#### N"; or a Hugging Face copy
(openai/gsm8k: `main/` with the same columns, parquet or save_to_disk).

Exemplars: Wei et al. 2022 wrote 8 exemplars by hand; those are not in the GSM8K release, so we use the
first 8 problems of `train.jsonl` (a local file), their solutions with the calculator annotations
`<<48/2=24>>` removed and "The answer is N." appended. The prompt is "Q: ...\\nA: ..." blocks, blank-line
separated, then "Q: {question}\\nA:". Score: exact match of the last number with the test answer.
"""
from __future__ import annotations

from flan_ul2r.data.flan.formats import FormatError, cot_row
from flan_ul2r.evaluation.extract import normalize_number
from flan_ul2r.evaluation.files import BenchmarkFileError, read_jsonl, require_dir, require_file
from flan_ul2r.evaluation.hf_files import find_split, nothing_found, read_rows
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol, few_shot

NUM_SHOTS = 8  # Wei et al. 2022, GSM8K: 8 exemplars
LAYOUT = "train.jsonl and test.jsonl (GSM8K's grade_school_math/data/)"
HF_LAYOUT = ("openai/gsm8k: main/train-*.parquet, main/test-*.parquet or save_to_disk (columns question, "
             "answer)")
PROTOCOL = Protocol("GSM8K-CoT", shape="number", cot=True, max_new_tokens=256, stop_sequences=("\n\nQ:",))


def _rows(root, split: str) -> list[dict[str, str]]:
    original = root / f"{split}.jsonl"
    if original.is_file() or (root / "test.jsonl").is_file():
        path = require_file(original, "GSM8K_DIR", LAYOUT)
        return [{"where": f"{path}:{n}", **r} for n, r in read_jsonl(path)]
    found = find_split(root, split, "main")
    if found is None:
        raise nothing_found("GSM8K_DIR", root, LAYOUT, HF_LAYOUT)
    return [{"where": f"{found} row {n}", **r}
            for n, r in enumerate(read_rows(found, ("question", "answer"), HF_LAYOUT))]


def read_split(gsm8k_dir, split: str) -> list[dict[str, str]]:
    """{question, rationale (calculator annotations removed), answer} per problem of `split`, from the
    release's JSONL or a Hugging Face copy (openai/gsm8k: `main/<split>-*.parquet` or save_to_disk)."""
    root = require_dir(gsm8k_dir, "GSM8K_DIR", LAYOUT)
    rows = []
    for r in _rows(root, split):
        where = r.pop("where")
        try:
            row = cot_row(r, where)
        except FormatError as e:
            raise BenchmarkFileError(str(e)) from None
        if normalize_number(row["answer"]) is None:
            raise BenchmarkFileError(f"{where}: final answer {row['answer']!r} is not a number")
        rows.append(row)
    return rows


def exemplar(question: str, rationale: str, answer: str) -> tuple[str, str]:
    """(the exemplar block, its answer text)."""
    target = f"{rationale} The answer is {answer}."
    return f"Q: {question}\nA: {target}\n\n", target


def load(gsm8k_dir, *, split: str = "test", num_shots: int = NUM_SHOTS) -> list[EvalExample]:
    shots = [exemplar(s["question"], s["rationale"], s["answer"])
             for s in read_split(gsm8k_dir, "train")[:num_shots]]
    return [few_shot(f"{split}/{i}", "", shots, f"Q: {r['question']}\nA:", (r["answer"],))
            for i, r in enumerate(read_split(gsm8k_dir, split))]


def tasks(gsm8k_dir) -> list[EvalTask]:
    get = gsm8k_dir if callable(gsm8k_dir) else (lambda: gsm8k_dir)
    return [EvalTask("gsm8k_cot", PROTOCOL, lambda: load(get()))]
