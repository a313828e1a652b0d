"""MGSM (Shi et al. 2022, "Language Models are Multilingual Chain-of-Thought Reasoners"): 250 GSM8K
problems translated into 10 languages (+ English); 8-shot CoT with exemplars in the target language,
scored on the last number (Chung et al. 2022, section 2.3: MGSM-CoT).

Layout (`MGSM_DIR`): `mgsm_<lang>.tsv` as released (question<TAB>answer number, no header) and, because
the exemplars are not in those files, `exemplars/<lang>.jsonl`: 8 lines {"question", "answer"} with the
worked solution in that language, ending with its final number. Use the "native" exemplars published with
MGSM (Shi et al. 2022, Native-CoT: the first 8 GSM8K training problems translated by the same annotators;
url-nlp repository, `mgsm/exemplars.py`). Prompt: "Q: ...\\nA: ..." blocks, then "Q: {question}\\nA:".
"""
from __future__ import annotations

import csv
import io

from flan_ul2r.evaluation.extract import last_number, normalize_number
from flan_ul2r.evaluation.files import BenchmarkFileError, need_str, read_jsonl, require_dir, require_file
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol

LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
NUM_SHOTS = 8  # Chung et al. 2022 section 2.3 / Shi et al. 2022: 8-shot
LAYOUT = "mgsm_<lang>.tsv (question<TAB>answer) and exemplars/<lang>.jsonl ({question, answer}, 8 lines)"
PROTOCOL = Protocol("MGSM-CoT", shape="number", cot=True, max_new_tokens=256, stop_sequences=("\n\nQ:",))


def read_tsv(path) -> list[tuple[str, str]]:
    rows = []
    with io.StringIO(path.read_text(encoding="utf-8"), newline="") as f:  # epath: local or gs://
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(row) != 2 or normalize_number(row[1]) is None:
                raise BenchmarkFileError(f"{path}: row {n}: expected 'question<TAB>answer number', got "
                                         f"{len(row)} field(s) {row[1:2]}")
            rows.append((row[0], row[1].strip()))
    return rows


def read_exemplars(path, num_shots: int) -> list[tuple[str, str]]:
    shots = []
    for n, obj in read_jsonl(path):
        where = f"{path}:{n}"
        question, answer = need_str(obj, "question", where), need_str(obj, "answer", where)
        if last_number(answer) is None:
            raise BenchmarkFileError(f"{where}: the exemplar's answer has no final number")
        shots.append((question, answer))
    if len(shots) < num_shots:
        raise BenchmarkFileError(f"{path}: {len(shots)} exemplars; the protocol needs {num_shots}")
    return shots[:num_shots]


def load(mgsm_dir, lang: str, *, num_shots: int = NUM_SHOTS) -> list[EvalExample]:
    root = require_dir(mgsm_dir, "MGSM_DIR", LAYOUT)
    rows = read_tsv(require_file(root / f"mgsm_{lang}.tsv", "MGSM_DIR", LAYOUT))
    shots = read_exemplars(require_file(root / "exemplars" / f"{lang}.jsonl", "MGSM_DIR", LAYOUT), num_shots)
    head = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in shots)
    return [EvalExample(f"{lang}/{i}", f"{head}Q: {q}\nA:", (a,)) for i, (q, a) in enumerate(rows)]


def tasks(mgsm_dir) -> list[EvalTask]:
    get = mgsm_dir if callable(mgsm_dir) else (lambda: mgsm_dir)
    return [EvalTask(f"mgsm_cot.{lang}", PROTOCOL, lambda lang=lang: load(get(), lang)) for lang in LANGUAGES]
