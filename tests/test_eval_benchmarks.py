"""Each benchmark reader on a fixture in the benchmark's real layout (tests/fixtures/eval/), the prompts its
protocol prescribes (k shots, from the right split, in order), and bad files named in the error."""
import json
import shutil
from pathlib import Path

import pytest

from flan_ul2r.data.flan.suite.tasks import SUITE, generate
from flan_ul2r.evaluation.benchmarks import bbh, gsm8k, heldout, mgsm, mmlu, tydiqa
from flan_ul2r.evaluation.files import BenchmarkFileError

FIX = Path(__file__).parent / "fixtures" / "eval"


def test_mmlu_direct_five_dev_shots_in_order():
    exs = mmlu.load(FIX / "mmlu", "abstract_algebra", split="val")
    assert [e.references for e in exs] == [("A",), ("C",), ("C",)]
    blocks = exs[0].prompt.split("\n\n")
    assert blocks[0] == "The following are multiple choice questions (with answers) about abstract algebra."
    dev = (FIX / "mmlu/dev/abstract_algebra_dev.csv").read_text().splitlines()
    assert len(blocks) == 7  # header, 5 dev exemplars, the query
    assert blocks[1] == ("Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\n"
                         "Answer: B")
    assert blocks[5].startswith("Find the characteristic of the ring 2Z.") and blocks[5].endswith("Answer: A")
    assert dev[4].startswith("Find the characteristic")
    assert blocks[6] == ("Find the order of the factor group (Z_11 x Z_15)/(<1, 1>)\nA. 1\nB. 2\nC. 5\n"
                         "D. 11\nAnswer:")


def test_mmlu_split_and_cot_prompt():
    test = mmlu.load(FIX / "mmlu", "abstract_algebra", split="test")
    assert len(test) == 2 and test[0].prompt.endswith("Q(sqrt(2)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
    cot = mmlu.load(FIX / "mmlu", "abstract_algebra", split="val", cot=True)
    prefix = json.loads((FIX / "mmlu/mmlu-cot.json").read_text())["abstract_algebra"]
    assert cot[1].prompt.startswith(prefix)
    assert cot[1].prompt.endswith("\n\nQ: The polynomial x^3 + 2x^2 + 2x + 1 can be factored into linear "
                                  "factors in Z_7[x]. Find this factorization.\n(A) (x − 2)(x + 2)(x − 1) "
                                  "(B) (x + 1)(x + 4)(x − 2) (C) (x + 1)(x − 4)(x − 2) (D) (x - 1)(x − 4)"
                                  "(x − 2)\nA: Let's think step by step.")


def test_bbh_cot_and_direct_prompts():
    cot = bbh.load(FIX / "bbh", "date_understanding", cot=True)
    assert [e.references for e in cot] == [("(B)",), ("(E)",)]
    p = cot[0].prompt
    assert p.startswith("Infer the date from context.\n\nQ: Today is Christmas Eve of 1937. What is the")
    assert "canary" not in p and p.count("Q: ") == 4 and p.count("So the answer is") == 3
    assert p.endswith("Q: Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?\n"
                      "Options:\n(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938\n(D) 12/04/1937\n"
                      "(E) 12/25/2006\n(F) 07/25/1937\nA: Let's think step by step.")
    direct = bbh.load(FIX / "bbh", "date_understanding", cot=False)[0].prompt
    assert "Let's think" not in direct and "\nA: (D)\n\nQ: Tomorrow is 11/12/2019." in direct
    assert "\nA: (B)\n\nQ: Jane and John" in direct and direct.endswith("(F) 07/25/1937\nA:")


def test_bbh_exemplar_answers_and_chance():
    _, shots = bbh.parse_cot_prompt(FIX / "bbh/cot-prompts/boolean_expressions.txt")
    assert [a for _, _, a in shots] == ["False", "False", "True"]
    _, shots = bbh.parse_cot_prompt(FIX / "bbh/cot-prompts/word_sorting.txt")
    assert shots[1][2] == "credulity hypochlorite phone ponderosa"
    assert bbh.load(FIX / "bbh", "date_understanding", cot=True)[0].chance == pytest.approx(100 / 6)
    assert bbh.load(FIX / "bbh", "boolean_expressions", cot=False)[0].chance == 50.0
    assert bbh.load(FIX / "bbh", "word_sorting", cot=False)[0].chance == 0.0
    assert len(bbh.TASKS) == 27 and len(set(bbh.TASKS)) == 27


def test_gsm8k_eight_train_shots():
    exs = gsm8k.load(FIX / "gsm8k")
    assert [e.references for e in exs] == [("18",), ("3",), ("70000",)]
    p = exs[0].prompt
    assert p.count("Q: ") == 9 and "<<" not in p and "NINTH" not in p   # 8 shots from train, in file order
    assert p.startswith("Q: Natalia sold clips to 48 of her friends in April")
    assert ("Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and "
            "May. The answer is 72.\n\nQ: Weng earns") in p
    assert p.endswith("How much in dollars does she make every day at the farmers' market?\nA:")


def test_mgsm_native_exemplars():
    exs = mgsm.load(FIX / "mgsm", "de")
    assert [e.references for e in exs] == [("18",), ("3",)]
    assert exs[1].prompt.count("Q: Frage ") == 8 and exs[1].prompt.startswith("Q: Frage 0: Roger hat 5")
    assert exs[1].prompt.endswith("Wie viele Ballen braucht er insgesamt?\nA:")


def test_tydiqa_one_shot_per_language_without_english():
    fi = tydiqa.load(FIX / "tydiqa", "finnish")
    assert len(fi) == 1 and fi[0].references == ("Helsinki",)
    assert fi[0].prompt == ("Tukholma on Ruotsin pääkaupunki.\n\nQ: Mikä on Ruotsin pääkaupunki?\n\nA: "
                            "Tukholma\n\nHelsinki on Suomen pääkaupunki ja suurin kaupunki.\n\nQ: Mikä "
                            "on Suomen pääkaupunki?\n\nA:")
    assert [e.id for e in tydiqa.load(FIX / "tydiqa", "arabic")] == ["arabic-7-0", "arabic-7-1"]
    assert "english" not in tydiqa.LANGUAGES and len(tydiqa.LANGUAGES) == 8


def test_heldout_tasks_discovered_and_rendered_from_the_right_splits():
    held = [t for t in SUITE if t.held_out]
    names = {t.name for t in heldout.tasks(4)}
    assert {f"heldout_{s}.{t.name}" for t in held for s in ("zs", "fs", "cot")} <= names
    task = next(t for t in held if t.name == "weekday_after")          # has options: rank task too
    assert f"heldout_rank.{task.name}" in names
    shots, queries = generate(task, 3, "train"), generate(task, 4, "validation")
    fs = heldout.load(task, "fs", 4)
    assert [e.references[0] for e in fs] == [q["answer"] for q in queries]
    first = fs[0].prompt.split("\n\n\n")
    assert len(first) == 4 and first[0].endswith("\n\n" + shots[0]["answer"])  # exemplar 1 = train example 1
    assert fs[0].choices == tuple(queries[0]["options"]) and fs[0].chance == pytest.approx(100 / 7)
    cot = heldout.load(task, "cot", 1)[0].prompt
    assert cot.count("So the answer is") == 3 and cot.endswith("Let's think step by step.")


@pytest.fixture
def copy_of(tmp_path):
    def make(name):
        shutil.copytree(FIX / name, tmp_path / name)
        return tmp_path / name
    return make


def test_missing_directory_and_file_are_named(copy_of):
    with pytest.raises(BenchmarkFileError, match="MMLU_DIR is not set"):
        mmlu.load(None, "abstract_algebra")
    with pytest.raises(BenchmarkFileError, match="BBH_DIR=/nonexistent: no such directory .*bbh/<task>.json"):
        bbh.load("/nonexistent", "navigate", cot=True)
    root = copy_of("mmlu")
    with pytest.raises(BenchmarkFileError, match=r"val/anatomy_val.csv: missing file"):
        mmlu.load(root, "anatomy")
    (root / "mmlu-cot.json").unlink()
    with pytest.raises(BenchmarkFileError, match=r"mmlu-cot.json: missing file"):
        mmlu.load(root, "abstract_algebra", cot=True)


def test_malformed_csv_row_named(copy_of):
    root = copy_of("mmlu")
    path = root / "val/abstract_algebra_val.csv"
    path.write_text(path.read_text() + "A question with too few fields,1,2,3\n")
    with pytest.raises(BenchmarkFileError, match=r"abstract_algebra_val.csv: row 4 has 4 fields"):
        mmlu.load(root, "abstract_algebra")
    path.write_text("Q?,1,2,3,4,E\n")
    with pytest.raises(BenchmarkFileError, match=r"row 1: answer 'E' is not one of A, B, C, D"):
        mmlu.load(root, "abstract_algebra")


def test_malformed_json_examples_named(copy_of):
    root = copy_of("bbh")
    (root / "bbh/navigate.json").write_text(json.dumps({"examples": [{"input": "x", "target": "Yes"},
                                                                    {"input": "y"}]}))
    shutil.copy(root / "cot-prompts/boolean_expressions.txt", root / "cot-prompts/navigate.txt")
    with pytest.raises(BenchmarkFileError, match=r"navigate.json: example 1 needs string fields"):
        bbh.load(root, "navigate", cot=True)
    (root / "bbh/navigate.json").write_text("{not json")
    with pytest.raises(BenchmarkFileError, match=r"navigate.json: not valid JSON"):
        bbh.load(root, "navigate", cot=True)
    g = copy_of("gsm8k")
    (g / "test.jsonl").write_text('{"question": "q", "answer": "4"}\n')
    with pytest.raises(BenchmarkFileError, match=r"test.jsonl:1: field 'answer' has no '#### <final"):
        gsm8k.load(g)
    t = copy_of("tydiqa")
    data = json.loads((t / tydiqa.FILES["dev"]).read_text())
    del data["data"][0]["paragraphs"][0]["qas"][0]["answers"]
    (t / tydiqa.FILES["dev"]).write_text(json.dumps(data))
    with pytest.raises(BenchmarkFileError, match=r"paragraphs\[0\].qas\[0\] \(id finnish-1-0\)"):
        tydiqa.load(t, "finnish")


def test_malformed_tsv_row_named(copy_of):
    root = copy_of("mgsm")
    (root / "mgsm_de.tsv").write_text("Frage ohne Antwort\n")
    with pytest.raises(BenchmarkFileError, match=r"mgsm_de.tsv: row 1: expected 'question<TAB>answer"):
        mgsm.load(root, "de")
