"""MGSM (Shi et al. 2022, "Language Models are Multilingual Chain-of-Thought Reasoners"): 250 GSM8K test
problems translated into 10 languages (+ English); 8-shot CoT with exemplars in the target language,
scored on the last number (Chung et al. 2022, section 2.3: MGSM-CoT).

Layouts (`MGSM_DIR`), detected from the files:
- the public repository (google-research/url-nlp `mgsm/`, mirrored by juletxara/mgsm): `mgsm_<lang>.tsv`
  (question<TAB>answer number, no header) and `exemplars.py`, whose `MGSM_EXEMPLARS[lang]["1".."8"]` hold
  each exemplar's question "q" and step-by-step answer "a". That file is read as data: parsed with `ast`
  and its literal evaluated, never imported or run;
- a Hugging Face copy (juletxara/mgsm's parquet conversion or save_to_disk): `<lang>/test` (question,
  answer_number) and `<lang>/train` (the 8 exemplars: question, answer);
- `exemplars/<lang>.jsonl` ({"question", "answer"} per line) beside the TSVs, for exemplars of your own.

The exemplars are Wei et al. 2022's eight hand-written chain-of-thought exemplars for math word problems
(Roger's tennis balls, the server room's computers, ...; final answers 11, 29, 39, 9, 33, 8, 8, 5), not
GSM8K training problems, translated by the MGSM annotators ("Native-Exemplars", Shi et al. 2022 section 3).
The public copies keep the native labels in the text ("Frage: ...", "Schritt-für-Schritt-Antwort: ...");
then the prompt uses them: "{q}\\n{a}\\n\\n" per exemplar and "Frage: {question}\\nSchritt-für-Schritt-
Antwort:" for the query (a query that already starts with the label is not labelled twice). Exemplars
without labels get "Q: ...\\nA: ..." blocks. Answers are read in the language's digit grouping: "70.000"
in German, Spanish, French and Russian is 70000 (`extract.last_number`).
"""
from __future__ import annotations

import ast
import csv
import io
import re
from collections import Counter

from flan_ul2r.evaluation.extract import last_number, normalize_number
from flan_ul2r.evaluation.files import BenchmarkFileError, need_str, read_jsonl, require_dir
from flan_ul2r.evaluation.hf_files import find_split, nothing_found, read_rows
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol, few_shot

LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
DECIMAL_COMMA = ("de", "es", "fr", "ru")  # languages writing 70.000 / 70 000 for seventy thousand (CLDR)
NUM_SHOTS = 8  # Chung et al. 2022 section 2.3 / Shi et al. 2022: 8-shot
LAYOUT = "mgsm_<lang>.tsv (question<TAB>answer) and exemplars.py (url-nlp's mgsm/) or exemplars/<lang>.jsonl"
HF_LAYOUT = "juletxara/mgsm: <lang>/test and <lang>/train splits (columns question, answer, answer_number)"
EXEMPLARS_PY = "exemplars.py"
_LABEL = re.compile(r"^([^\n:：]{1,40}?[:：])\s*")


def protocol(lang: str) -> Protocol:
    return Protocol("MGSM-CoT", shape="number", cot=True, max_new_tokens=256, stop_sequences=("\n\n",),
                    decimal_comma=lang in DECIMAL_COMMA)


def read_tsv(path) -> list[tuple[str, str]]:
    rows = []
    with io.StringIO(path.read_text(encoding="utf-8"), newline="") as f:  # epath: local or gs://
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(row) != 2 or normalize_number(row[1]) is None:
                raise BenchmarkFileError(f"{path}: row {n}: expected 'question<TAB>answer number', got "
                                         f"{len(row)} field(s) {row[1:2]}")
            rows.append((row[0], row[1].strip()))
    return rows


def parse_exemplars_py(path) -> dict[str, list[tuple[str, str]]]:
    """`MGSM_EXEMPLARS` of the public `exemplars.py` as {lang: [(q, a), ...]} in key order "1".."8", read
    with `ast.literal_eval` on the assignment's value: the file's code never runs."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as e:
        raise BenchmarkFileError(f"{path}: line {e.lineno}: not valid Python ({e.msg})") from None
    node = next((n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "MGSM_EXEMPLARS" for t in n.targets)), None)
    if node is None:
        raise BenchmarkFileError(f"{path}: no top-level `MGSM_EXEMPLARS = {{...}}` assignment")
    try:
        data = ast.literal_eval(node)
    except ValueError:
        raise BenchmarkFileError(f"{path}: line {node.lineno}: MGSM_EXEMPLARS is not a literal") from None
    out = {}
    for lang, shots in (data.items() if isinstance(data, dict) else ()):
        if not isinstance(shots, dict):
            raise BenchmarkFileError(f"{path}: MGSM_EXEMPLARS[{lang!r}] is not a dict of exemplars")
        keys = sorted(shots, key=lambda k: int(k) if str(k).isdigit() else 1 << 30)
        for k in keys:
            if not (isinstance(shots[k], dict) and isinstance(shots[k].get("q"), str)
                    and isinstance(shots[k].get("a"), str)):
                raise BenchmarkFileError(f"{path}: MGSM_EXEMPLARS[{lang!r}][{k!r}] needs strings 'q' and 'a'")
        out[str(lang)] = [(shots[k]["q"], shots[k]["a"]) for k in keys]
    return out


def _label(text: str) -> str | None:
    m = _LABEL.match(text)
    return m.group(1) if m else None


def native_labels(shots: list[tuple[str, str]], where: str) -> tuple[str, str] | None:
    """(question label, answer label) when every exemplar starts with the same two (the public copies:
    "Frage:" / "Schritt-für-Schritt-Antwort:"); None when none is labelled; an error when only some are."""
    q_labels, a_labels = Counter(_label(q) for q, _ in shots), Counter(_label(a) for _, a in shots)
    if len(q_labels) == 1 and len(a_labels) == 1 and None not in q_labels and None not in a_labels:
        return next(iter(q_labels)), next(iter(a_labels))
    for labels, side in ((q_labels, "question"), (a_labels, "answer")):
        common, count = labels.most_common(1)[0]
        if common is not None and 1 < count < len(shots):
            raise BenchmarkFileError(f"{where}: {count} of {len(shots)} exemplar {side}s start with the "
                                     f"label {common!r} and the others do not; label all of them or none")
    return None


def _exemplar_file(root, lang: str):
    if (root / EXEMPLARS_PY).is_file():
        by_lang = parse_exemplars_py(root / EXEMPLARS_PY)
        if lang not in by_lang:
            raise BenchmarkFileError(f"{root / EXEMPLARS_PY}: MGSM_EXEMPLARS has no {lang!r} (has "
                                     f"{sorted(by_lang)})")
        return by_lang[lang], str(root / EXEMPLARS_PY)
    path = root / "exemplars" / f"{lang}.jsonl"
    if path.is_file():
        return [(need_str(o, "question", f"{path}:{n}"), need_str(o, "answer", f"{path}:{n}"))
                for n, o in read_jsonl(path)], str(path)
    found = find_split(root, "train", lang)
    if found is not None:
        return [(str(r["question"]), str(r["answer"])) for r in read_rows(found, ("question", "answer"),
                                                                         HF_LAYOUT)], str(found)
    return None, ""


def read_exemplars(root, lang: str, num_shots: int) -> tuple[list[tuple[str, str]], str]:
    """The language's exemplars (the first `num_shots`) and where they were read."""
    shots, where = _exemplar_file(root, lang)
    if shots is None:
        raise BenchmarkFileError(f"MGSM_DIR={root}: no exemplars for {lang!r}: expected {EXEMPLARS_PY} (the "
                                 f"public repository's), exemplars/{lang}.jsonl or a Hugging Face "
                                 f"{lang}/train split")
    for n, (_, answer) in enumerate(shots, 1):
        if last_number(answer, decimal_comma=lang in DECIMAL_COMMA) is None:
            raise BenchmarkFileError(f"{where}: exemplar {n}: the answer has no final number")
    if len(shots) < num_shots:
        raise BenchmarkFileError(f"{where}: {len(shots)} exemplars for {lang!r}; the protocol needs "
                                 f"{num_shots}")
    return shots[:num_shots], where


def read_questions(root, lang: str) -> list[tuple[str, str]]:
    tsv = root / f"mgsm_{lang}.tsv"
    if tsv.is_file():
        return read_tsv(tsv)
    found = find_split(root, "test", lang)
    if found is None:
        raise nothing_found("MGSM_DIR", root, LAYOUT, HF_LAYOUT)
    return [(str(r["question"]), str(r["answer_number"]))
            for r in read_rows(found, ("question", "answer_number"), HF_LAYOUT)]


def load(mgsm_dir, lang: str, *, num_shots: int = NUM_SHOTS) -> list[EvalExample]:
    root = require_dir(mgsm_dir, "MGSM_DIR", LAYOUT)
    rows = read_questions(root, lang)
    shots, where = read_exemplars(root, lang, num_shots)
    labels = native_labels(shots, where)
    if labels:
        q_label, a_label = labels
        sep = " " if shots[0][0][len(q_label):].startswith(" ") else ""  # "Frage: ..." but "问题：..."
        blocks = [(f"{q}\n{a}\n\n", _LABEL.sub("", a, count=1)) for q, a in shots]

        def query(q: str) -> str:
            q = _LABEL.sub("", q, count=1) if _label(q) == q_label else q
            return f"{q_label}{sep}{q}\n{a_label}"
    else:
        blocks = [(f"Q: {q}\nA: {a}\n\n", a) for q, a in shots]

        def query(q: str) -> str:
            return f"Q: {q}\nA:"
    return [few_shot(f"{lang}/{i}", "", blocks, query(q), (a,)) for i, (q, a) in enumerate(rows)]


def tasks(mgsm_dir) -> list[EvalTask]:
    get = mgsm_dir if callable(mgsm_dir) else (lambda: mgsm_dir)
    return [EvalTask(f"mgsm_cot.{lang}", protocol(lang), lambda lang=lang: load(get(), lang))
            for lang in LANGUAGES]
