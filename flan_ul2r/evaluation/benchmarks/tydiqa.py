"""TyDiQA GoldP (Clark et al. 2020): the gold passage task, SQuAD-style JSON. Flan scores it 1-shot, direct,
exact match, over the 8 languages other than English (Chung et al. 2022, section 2.3); F1 is reported too.

Layout (`TYDIQA_DIR`): `tydiqa-goldp-v1.1-dev.json` and `tydiqa-goldp-v1.1-train.json` as released
({"data": [{"paragraphs": [{"context", "qas": [{"id", "question", "answers": [{"text"}]}]}]}]}), or a
Hugging Face copy (google/tydiqa `secondary_task`: train / validation, columns id, context, question,
answers {text}); an example's language is its id prefix ("arabic-...").
The exemplar is the first training question of the same language. Prompt: "{passage}\\n\\nQ: {question}\\n
\\nA: {answer}" for the exemplar, a blank line, then the query ending "A:"; the answer is the first line.
Metrics: SQuAD v1.1 normalisation, exact match and F1 against the best gold answer.
"""
from __future__ import annotations

from etils import epath

from flan_ul2r.evaluation.files import BenchmarkFileError, json_list, require_dir, require_file
from flan_ul2r.evaluation.hf_files import find_split, nothing_found, read_rows
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol, few_shot

LANGUAGES = ("arabic", "bengali", "finnish", "indonesian", "korean", "russian", "swahili", "telugu")
FILES = {"dev": "tydiqa-goldp-v1.1-dev.json", "train": "tydiqa-goldp-v1.1-train.json"}
LAYOUT = f"{FILES['dev']} and {FILES['train']} (TyDiQA GoldP v1.1)"
HF_LAYOUT = ("google/tydiqa secondary_task: train and validation splits (columns id, context, question, "
             "answers)")
HF_SPLITS = {"train": ("train",), "dev": ("validation", "dev")}
PROTOCOL = Protocol("TyDiQA-Direct", shape="text", metric="squad", max_new_tokens=32, stop_sequences=("\n",))


def read_questions(path: epath.Path, lang: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(id, context, question, answers) of one language, in file order."""
    articles = json_list(path, "data", "SQuAD-style JSON with a top-level 'data' list")
    out = []
    for a, article in enumerate(articles):
        for p, para in enumerate(article.get("paragraphs", [])):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            if not isinstance(para.get("context"), str) or not isinstance(para.get("qas"), list):
                raise BenchmarkFileError(f"{where}: needs 'context' (string) and 'qas' (list)")
            for q, qa in enumerate(para["qas"]):
                if not str(qa.get("id", "")).startswith(f"{lang}-"):
                    continue
                answers = tuple(x.get("text") for x in qa.get("answers", []) if isinstance(x, dict))
                if not isinstance(qa.get("question"), str) or not answers or not all(
                        isinstance(t, str) for t in answers):
                    raise BenchmarkFileError(f"{where}.qas[{q}] (id {qa.get('id')}): needs 'question' and "
                                             "'answers' [{'text': ...}]")
                out.append((qa["id"], para["context"], qa["question"], answers))
    return out


def block(context: str, question: str, answer: str | None = None) -> str:
    return f"{context}\n\nQ: {question}\n\nA:" + (f" {answer}" if answer is not None else "")


def hf_questions(root: epath.Path, split: str, lang: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """google/tydiqa's `secondary_task` (GoldP) columns id, context, question, answers {text: [...]},
    splits train / validation; or a per-language config folder `<language>/` with the same columns."""
    names = HF_SPLITS[split]
    found = find_split(root, names, "secondary_task") or find_split(root, names, lang)
    if found is None:
        raise nothing_found("TYDIQA_DIR", root, LAYOUT, HF_LAYOUT)
    out = []
    for n, r in enumerate(read_rows(found, ("id", "context", "question", "answers"), HF_LAYOUT)):
        if not str(r["id"]).startswith(f"{lang}-"):
            continue
        texts = (r["answers"] or {}).get("text") if isinstance(r["answers"], dict) else None
        if not texts or not all(isinstance(t, str) for t in texts):
            raise BenchmarkFileError(f"{found}: row {n} (id {r['id']}): 'answers' needs {{'text': [...]}}")
        out.append((str(r["id"]), str(r["context"]), str(r["question"]), tuple(texts)))
    return out


def questions(root: epath.Path, split: str, lang: str
              ) -> tuple[list[tuple[str, str, str, tuple[str, ...]]], str]:
    """One language's questions of `split` ("train" or "dev") and the file they came from."""
    original = root / FILES[split]
    if original.is_file() or (root / FILES["dev"]).is_file():
        return read_questions(require_file(original, "TYDIQA_DIR", LAYOUT), lang), str(original)
    return hf_questions(root, split, lang), f"{root} ({split} split)"


def load(tydiqa_dir, lang: str) -> list[EvalExample]:
    root = require_dir(tydiqa_dir, "TYDIQA_DIR", LAYOUT)
    train, where = questions(root, "train", lang)
    if not train:
        raise BenchmarkFileError(f"{where}: no {lang} question for the 1-shot exemplar")
    _, c0, q0, a0 = train[0]
    shot = (block(c0, q0, a0[0]) + "\n\n", a0[0])
    return [few_shot(i, "", [shot], block(c, q), a) for i, c, q, a in questions(root, "dev", lang)[0]]


def tasks(tydiqa_dir) -> list[EvalTask]:
    get = tydiqa_dir if callable(tydiqa_dir) else (lambda: tydiqa_dir)
    return [EvalTask(f"tydiqa_direct.{lang}", PROTOCOL, lambda lang=lang: load(get(), lang))
            for lang in LANGUAGES]
