"""MMLU (Hendrycks et al. 2021, "Measuring Massive Multitask Language Understanding").

Layout: the original release's `data/` folder (`MMLU_DIR`): `dev/<subject>_dev.csv` (5 exemplars per
subject), `val/<subject>_val.csv`, `test/<subject>_test.csv`; rows are question, A, B, C, D, answer letter,
no header. Or a Hugging Face copy (cais/mmlu, parquet or save_to_disk; `hf_subject_rows`). The Flan paper
scores the validation split with 5 exemplars from `dev` (Chung et al. 2022, section 2.3), direct and
chain-of-thought: `split="val"` by default (`MMLU_SPLIT` in gin/runs/eval.gin; "test" for the test split).

- Direct: Hendrycks et al.'s prompt (their `evaluate.py`): "The following are multiple choice questions
  (with answers) about {subject}.\\n\\n", then each exemplar as the question, "\\nA. ..." per choice and
  "\\nAnswer: X\\n\\n", then the query ending in "Answer:". (Their `format_subject` leaves a double space
  before the subject; we print one.) The answer is the option letter.
- CoT: Flan's MMLU chain-of-thought exemplars are not part of the MMLU release; we read them from
  `MMLU_DIR/mmlu-cot.json` ({subject: prompt text}, the layout of the file published with the Flan CoT
  prompts, e.g. chain-of-thought-hub's `MMLU/lib_prompt/mmlu-cot.json`), then ask
  "Q: {question}\\n(A) .. (B) .. (C) .. (D) ..\\nA: Let's think step by step." and read the letter after
  "the answer is".
- Score: accuracy over all questions of all subjects (Hendrycks et al.'s `evaluate.py` averages over
  questions); per-subject scores are reported too. Random = 25.
"""
from __future__ import annotations

import csv
import io
import re

from etils import epath

from flan_ul2r.evaluation.files import BenchmarkFileError, read_json, require_dir, require_file
from flan_ul2r.evaluation.hf_files import find_split, nothing_found, read_rows
from flan_ul2r.evaluation.metrics import MMLU_RANDOM
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol, few_shot

SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine",
    "college_physics", "computer_security", "conceptual_physics", "econometrics", "electrical_engineering",
    "elementary_mathematics", "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics", "high_school_mathematics",
    "high_school_microeconomics", "high_school_physics", "high_school_psychology", "high_school_statistics",
    "high_school_us_history", "high_school_world_history", "human_aging", "human_sexuality",
    "international_law", "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition", "philosophy",
    "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy",
    "virology", "world_religions")
LETTERS = "ABCD"
NUM_SHOTS = 5  # Hendrycks et al. 2021 and Chung et al. 2022 section 2.3: 5-shot from dev
LAYOUT = "dev/<subject>_dev.csv, val/<subject>_val.csv, test/<subject>_test.csv (MMLU's data/ folder)"
HF_LAYOUT = ("cais/mmlu: <subject>/ or all/ with dev, validation, test splits; columns question, choices, "
             "answer (0-3), subject")
HF_SPLITS = {"val": ("validation", "val"), "dev": ("dev",), "test": ("test",)}
SPLITS = ("val", "test", "dev")
COT_FILE = "mmlu-cot.json"

DIRECT = Protocol("MMLU-Direct", shape="letter", max_new_tokens=8, stop_sequences=("\n",),
                  random=MMLU_RANDOM, aggregate="micro")
COT = Protocol("MMLU-CoT", shape="letter", cot=True, max_new_tokens=256, stop_sequences=("\n\nQ:",),
               random=MMLU_RANDOM, aggregate="micro")


def read_csv(path: epath.Path) -> list[tuple[str, tuple[str, ...], str]]:
    """Rows (question, (A, B, C, D), answer letter); a malformed row is an error naming file and row."""
    rows = []
    with io.StringIO(path.read_text(encoding="utf-8"), newline="") as f:  # epath: local or gs://
        for n, row in enumerate(csv.reader(f), 1):
            if len(row) != 6:
                raise BenchmarkFileError(f"{path}: row {n} has {len(row)} fields; expected 6 "
                                         "(question, A, B, C, D, answer letter)")
            answer = row[5].strip()
            if answer not in LETTERS:
                raise BenchmarkFileError(f"{path}: row {n}: answer {row[5]!r} is not one of A, B, C, D")
            rows.append((row[0], tuple(row[1:5]), answer))
    return rows


def subject_rows(mmlu_dir: str | epath.Path | None, subject: str, split: str) -> list[tuple[str, tuple, str]]:
    """The subject's rows of `split` from the original CSVs, or from a Hugging Face copy (cais/mmlu's
    parquet or a save_to_disk folder: `hf_subject_rows`) when the original layout is not there."""
    root = require_dir(mmlu_dir, "MMLU_DIR", LAYOUT)
    original = root / split / f"{subject}_{split}.csv"
    if original.is_file() or (root / "dev").is_dir():
        return read_csv(require_file(original, "MMLU_DIR", LAYOUT))
    return hf_subject_rows(root, subject, split)


def hf_subject_rows(root: epath.Path, subject: str, split: str) -> list[tuple[str, tuple, str]]:
    """cais/mmlu's columns: question, choices (4 strings), answer (index 0-3), subject; split names
    `validation` (our `val`), `dev`, `test`; a per-subject config folder or `all` (filtered by subject)."""
    names = HF_SPLITS.get(split, (split,))
    found = find_split(root, names, subject) or find_split(root, names, "all")
    if found is None:
        raise nothing_found("MMLU_DIR", root, LAYOUT, HF_LAYOUT)
    rows = read_rows(found, ("question", "choices", "answer"), HF_LAYOUT)
    in_subject_folder = (root / subject) in found.files[0].parents
    out = []
    for n, r in enumerate(rows):
        if not in_subject_folder and r.get("subject", subject) != subject:
            continue
        answer = r["answer"]
        letter = LETTERS[answer] if isinstance(answer, int) and 0 <= answer < 4 else str(answer).strip()
        choices = r["choices"]
        if letter not in LETTERS or not isinstance(choices, list) or len(choices) != 4:
            raise BenchmarkFileError(f"{found}: row {n}: expected 4 choices and an answer index 0-3 (got "
                                     f"{len(choices) if isinstance(choices, list) else choices!r} choices, "
                                     f"answer {answer!r})")
        out.append((str(r["question"]), tuple(str(c) for c in choices), letter))
    if not out:
        raise BenchmarkFileError(f"{found}: no rows of subject {subject!r}")
    return out


def format_example(question: str, choices: tuple[str, ...], answer: str | None = None) -> str:
    """Hendrycks et al.'s `format_example`."""
    text = question + "".join(f"\n{letter}. {c}" for letter, c in zip(LETTERS, choices)) + "\nAnswer:"
    return text + (f" {answer}\n\n" if answer is not None else "")


def header(subject: str) -> str:
    topic = subject.replace("_", " ")
    return f"The following are multiple choice questions (with answers) about {topic}.\n\n"


def _options(choices: tuple[str, ...]) -> str:
    return " ".join(f"({letter}) {c}" for letter, c in zip(LETTERS, choices))


def cot_exemplars(prefix: str) -> tuple[str, list[tuple[str, str]]]:
    """Flan's CoT prompt for a subject as (head, [(exemplar block, its answer text)]): blocks start at
    "Q: " and their answer follows "\nA: "."""
    head, *blocks = re.split(r"(?m)^(?=Q: )", prefix.rstrip() + "\n\n")
    return head, [(b, b.split("\nA: ", 1)[-1].strip()) for b in blocks]


def load(mmlu_dir: str | epath.Path | None, subject: str, *, split: str = "val", cot: bool = False,
         num_shots: int = NUM_SHOTS) -> list[EvalExample]:
    """The subject's `split` questions as prompts (5 dev exemplars, in file order)."""
    if split not in SPLITS:
        raise BenchmarkFileError(f"MMLU_SPLIT={split!r}: use one of {SPLITS}")
    rows = subject_rows(mmlu_dir, subject, split)
    if cot:
        path = require_file(require_dir(mmlu_dir, "MMLU_DIR", LAYOUT) / COT_FILE, "MMLU_DIR",
                            "Flan's MMLU chain-of-thought exemplars: {subject: prompt}")
        prompts = read_json(path)
        if not isinstance(prompts, dict) or subject not in prompts:
            raise BenchmarkFileError(f"{path}: no prompt for subject {subject!r}")
        head, shots = cot_exemplars(str(prompts[subject]))
        query = lambda q, c: f"Q: {q}\n{_options(c)}\nA: Let's think step by step."  # noqa: E731
    else:
        head = header(subject)
        shots = [(format_example(*row), row[2]) for row in subject_rows(mmlu_dir, subject, "dev")[:num_shots]]
        query = format_example  # noqa: E731
    return [few_shot(f"{subject}/{split}/{i}", head, shots, query(q, c), (a,), choices=tuple(LETTERS))
            for i, (q, c, a) in enumerate(rows)]


def tasks(mmlu_dir, *, split="val") -> list[EvalTask]:
    """Direct and CoT tasks per subject: `mmlu_direct.<subject>`, `mmlu_cot.<subject>`. `mmlu_dir` and
    `split` are values or zero-argument callables (gin settings read when the task is evaluated)."""
    get = mmlu_dir if callable(mmlu_dir) else (lambda: mmlu_dir)
    get_split = split if callable(split) else (lambda: split)
    out = []
    for s in SUBJECTS:
        out.append(EvalTask(f"mmlu_direct.{s}", DIRECT, lambda s=s: load(get(), s, split=get_split())))
        out.append(EvalTask(f"mmlu_cot.{s}", COT, lambda s=s: load(get(), s, split=get_split(), cot=True)))
    return out
