"""The benchmarks in the formats people hold: Hugging Face copies (parquet as the Hub stores it, and
`datasets.save_to_disk` folders) in the Hub datasets' column layouts - cais/mmlu, lukaemon/bbh, openai/gsm8k,
juletxara/mgsm, google/tydiqa (secondary_task = GoldP) - built here with `datasets` from the original-layout
fixtures, must give exactly the prompts of the original files; the layout is detected from the files and an
error names the formats when nothing matches. MGSM's public `exemplars.py` is parsed, never run."""
import json
import shutil
from pathlib import Path

import datasets
import pytest

from flan_ul2r.evaluation.benchmarks import bbh, gsm8k, mgsm, mmlu, tydiqa
from flan_ul2r.evaluation.files import BenchmarkFileError

FIX = Path(__file__).parent / "fixtures" / "eval"
LETTERS = "ABCD"


def _write(root: Path, config: str, splits: dict[str, list[dict]], fmt: str) -> None:
    """One config of a Hub dataset: `<config>/<split>-00000-of-00001.parquet` (the Hub's files) or a
    `save_to_disk` folder of a DatasetDict."""
    dsets = {split: datasets.Dataset.from_list(rows) for split, rows in splits.items()}
    if fmt == "parquet":
        (root / config).mkdir(parents=True, exist_ok=True)
        for split, ds in dsets.items():
            ds.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
    else:
        datasets.DatasetDict(dsets).save_to_disk(str(root / config))


def _mmlu_rows(subject: str, split: str) -> list[dict]:
    return [{"question": q, "subject": subject, "choices": list(c), "answer": LETTERS.index(a)}
            for q, c, a in mmlu.read_csv(FIX / "mmlu" / split / f"{subject}_{split}.csv")]


@pytest.mark.parametrize("fmt", ["parquet", "save_to_disk"])
def test_mmlu_hf_copy_gives_the_original_prompts(tmp_path, fmt):
    root = tmp_path / "cais_mmlu"
    _write(root, "abstract_algebra", {"dev": _mmlu_rows("abstract_algebra", "dev"),
                                      "validation": _mmlu_rows("abstract_algebra", "val"),
                                      "test": _mmlu_rows("abstract_algebra", "test")}, fmt)
    shutil.copy(FIX / "mmlu" / "mmlu-cot.json", root / "mmlu-cot.json")
    for split in ("val", "test"):
        for cot in (False, True):
            assert mmlu.load(root, "abstract_algebra", split=split, cot=cot) == \
                mmlu.load(FIX / "mmlu", "abstract_algebra", split=split, cot=cot)


def test_mmlu_all_config_is_filtered_by_subject(tmp_path):
    other = [{"question": "Which is a noble gas?", "subject": "high_school_chemistry",
              "choices": ["Neon", "Sodium", "Iron", "Carbon"], "answer": 0}]
    rows = {s: _mmlu_rows("abstract_algebra", s) + other for s in ("dev", "test")}
    rows["validation"] = other + _mmlu_rows("abstract_algebra", "val")
    _write(tmp_path, "all", rows, "parquet")
    assert mmlu.load(tmp_path, "abstract_algebra") == mmlu.load(FIX / "mmlu", "abstract_algebra")


@pytest.mark.parametrize("fmt", ["parquet", "save_to_disk"])
def test_bbh_gsm8k_tydiqa_hf_copies_give_the_original_prompts(tmp_path, fmt):
    for task in ("date_understanding", "boolean_expressions"):
        rows = [{"input": q, "target": t} for q, t in bbh.read_examples(FIX / "bbh" / "bbh" / f"{task}.json")]
        _write(tmp_path / "bbh", task, {"test": rows}, fmt)
    shutil.copytree(FIX / "bbh" / "cot-prompts", tmp_path / "bbh" / "cot-prompts")
    for task in ("date_understanding", "boolean_expressions"):
        for cot in (False, True):
            assert bbh.load(tmp_path / "bbh", task, cot=cot) == bbh.load(FIX / "bbh", task, cot=cot)

    splits = {s: [json.loads(line) for line in (FIX / "gsm8k" / f"{s}.jsonl").read_text().splitlines()]
              for s in ("train", "test")}
    _write(tmp_path / "gsm8k", "main", splits, fmt)
    assert gsm8k.load(tmp_path / "gsm8k") == gsm8k.load(FIX / "gsm8k")

    tydi = {}
    for split, name in (("train", "train"), ("validation", "dev")):
        data = json.loads((FIX / "tydiqa" / tydiqa.FILES[name]).read_text())["data"]
        tydi[split] = [{"id": qa["id"], "title": a.get("title", ""), "context": p["context"],
                        "question": qa["question"],
                        "answers": {"text": [x["text"] for x in qa["answers"]],
                                    "answer_start": [x["answer_start"] for x in qa["answers"]]}}
                       for a in data for p in a["paragraphs"] for qa in p["qas"]]
    _write(tmp_path / "tydiqa", "secondary_task", tydi, fmt)
    for lang in ("finnish", "arabic"):
        assert tydiqa.load(tmp_path / "tydiqa", lang) == tydiqa.load(FIX / "tydiqa", lang)


def test_mgsm_hf_copy_with_native_labels(tmp_path):
    """juletxara/mgsm: the train split holds the 8 exemplars with their native labels in the text, the test
    split question + answer_number (answer empty)."""
    public = mgsm.parse_exemplars_py(FIX / "mgsm_public" / "exemplars.py")["de"]
    train = [{"question": q, "answer": a, "answer_number": int(a.rsplit(" ", 1)[1].rstrip(".")),
              "equation_solution": ""} for q, a in public]
    test = [{"question": q, "answer": None, "answer_number": int(n), "equation_solution": None}
            for q, n in mgsm.read_tsv(FIX / "mgsm_public" / "mgsm_de.tsv")]
    _write(tmp_path, "de", {"train": train, "test": test}, "parquet")
    assert mgsm.load(tmp_path, "de") == mgsm.load(FIX / "mgsm_public", "de")


def test_mgsm_public_exemplars_file_is_parsed_not_run(tmp_path):
    root = tmp_path / "mgsm"
    shutil.copytree(FIX / "mgsm_public", root)
    with (root / "exemplars.py").open("a") as f:   # would stop the test run if the file were executed
        f.write("\nimport sys\nsys.exit('exemplars.py was executed')\nraise RuntimeError('executed')\n")
    de = mgsm.load(root, "de")
    prompt = de[1].prompt
    # native labels, each once per block: 8 exemplars + the query, never "Q: Frage:"
    assert prompt.count("Frage: ") == 9 and prompt.count("Schritt-für-Schritt-Antwort:") == 9
    assert "Q: " not in prompt and "Frage: Frage:" not in prompt
    assert prompt.startswith("Frage: Roger hat 5 Tennisbälle.")
    assert prompt.endswith("Wie viele Ballen braucht er insgesamt?\nSchritt-für-Schritt-Antwort:")
    assert de[0].exemplar_targets[0].startswith("Roger begann mit 5 Bällen.")   # the label is not a target
    fr = mgsm.load(root, "fr")
    # the French TSV's second question kept its label "Question :": it is not labelled twice
    assert fr[1].prompt.count("Question : ") == 9 and "Question : Question" not in fr[1].prompt
    assert fr[1].prompt.endswith("Combien de rouleaux faut-il au total ?\nRéponse étape par étape :")


def test_mgsm_exemplar_errors_name_the_file(tmp_path):
    root = tmp_path / "mgsm"
    shutil.copytree(FIX / "mgsm_public", root)
    with pytest.raises(BenchmarkFileError, match=r"MGSM_DIR=.*: no benchmark files found. Looked for the "
                                                 r"original layout \(mgsm_<lang>.tsv"):
        mgsm.load(root, "ja")
    shutil.copy(root / "mgsm_de.tsv", root / "mgsm_ja.tsv")
    with pytest.raises(BenchmarkFileError, match=r"exemplars.py: MGSM_EXEMPLARS has no 'ja' \(has \['de', "
                                                 r"'fr'\]\)"):
        mgsm.load(root, "ja")
    text = (root / "exemplars.py").read_text()
    (root / "exemplars.py").write_text(text.replace('"q": "Frage: Jason', '"q": "Jason', 1))
    with pytest.raises(BenchmarkFileError, match=r"7 of 8 exemplar questions start with the label 'Frage:' "
                                                 r"and the others do not"):
        mgsm.load(root, "de")
    (root / "exemplars.py").write_text("MGSM_EXEMPLARS = dict(de=open('x'))\n")
    with pytest.raises(BenchmarkFileError, match=r"exemplars.py: line 1: MGSM_EXEMPLARS is not a literal"):
        mgsm.load(root, "de")
    (root / "exemplars.py").unlink()
    with pytest.raises(BenchmarkFileError, match=r"no exemplars for 'de': expected exemplars.py"):
        mgsm.load(root, "de")


def test_nothing_matching_names_the_formats_and_bad_columns_name_the_file(tmp_path):
    with pytest.raises(BenchmarkFileError, match=r"MMLU_DIR=.*: no benchmark files found\. Looked for the "
                                                 r"original layout \(dev/<subject>_dev.csv.*\) and a Hugging "
                                                 r"Face copy \(cais/mmlu.*formats: parquet .*datasets."
                                                 r"save_to_disk"):
        mmlu.load(tmp_path, "abstract_algebra")
    _write(tmp_path / "g", "main", {"test": [{"problem": "1 + 1?", "solution": "2"}]}, "parquet")
    with pytest.raises(BenchmarkFileError, match=r"main/test-00000-of-00001.parquet: parquet file lacks "
                                                 r"column\(s\) \['question', 'answer'\] \(has \['problem', "
                                                 r"'solution'\]\); expected openai/gsm8k"):
        gsm8k.read_split(tmp_path / "g", "test")
    _write(tmp_path / "b", "navigate", {"test": [{"input": "Q?", "target": "Yes"}]}, "save_to_disk")
    with pytest.raises(BenchmarkFileError, match=r"navigate.txt: missing file \(the exemplars: cot-prompts/"
                                                 r"<task>.txt from the BIG-Bench-Hard repository"):
        bbh.load(tmp_path / "b", "navigate", cot=True)
    with pytest.raises(BenchmarkFileError, match=r"BBH_DIR=.*: no benchmark files found; it holds parquet / "
                                                 r"save_to_disk files, but not of this layout"):
        bbh.load(tmp_path / "b", "snarks", cot=True)
