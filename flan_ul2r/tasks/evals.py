"""Evaluation tasks and suites (registration only; the code lives in flan_ul2r/evaluation/).

Every eval task is a seqio Task (`flan_ul2r.evaluation.seqio_tasks`), every suite a seqio Mixture, so
`seqio.get_mixture_or_task(name)` finds both. Benchmark directories are gin macros bound through
`eval_data.*` (gin/runs/eval.gin: MMLU_DIR, BBH_DIR, GSM8K_DIR, MGSM_DIR, TYDIQA_DIR); they are read only
when a task is evaluated, and a missing one is an error naming the macro and the expected files.

Tasks: `heldout_{zs,fs,cot,rank}.<task>` and `heldin_{zs,fs,cot,rank}.<task>` (embedded, no files),
`mmlu_{direct,cot}.<subject>`, `bbh_{direct,cot}.<task>`, `gsm8k_cot`, `mgsm_cot.<lang>`,
`tydiqa_direct.<language>`.
Suites: `heldout` (the default), `heldin` (the held-in tasks' validation split), one per style of each
(`heldout_zs`, `heldin_rank`, ...), `flan_paper` (the six
normalized-average scores, Chung et al. 2022 section 2.3), `mmlu`, `mmlu_direct`, `mmlu_cot`, `bbh`,
`bbh_direct`, `bbh_cot`, `gsm8k`, `mgsm`, `tydiqa`.
"""
from __future__ import annotations

from typing import Any

import gin

from flan_ul2r.evaluation.benchmarks import bbh, gsm8k, heldin, heldout, mgsm, mmlu, tydiqa
from flan_ul2r.evaluation.seqio_tasks import register, register_suite


@gin.configurable
def eval_data(mmlu_dir: str | None = None, bbh_dir: str | None = None, gsm8k_dir: str | None = None,
              mgsm_dir: str | None = None, tydiqa_dir: str | None = None, heldout_examples: int = 100,
              heldout_shots: int = 3, mmlu_split: str = "val", heldin_examples: int | None = None
              ) -> dict[str, Any]:
    """gin edge: where the benchmarks live (original layouts or Hugging Face copies), the MMLU split
    (`MMLU_SPLIT`: val, test or dev), and how many held-out examples (and few-shot exemplars) per embedded
    task; `heldin_examples` per held-in task (None: as many as `heldout_examples`)."""
    heldin_examples = heldout_examples if heldin_examples is None else heldin_examples
    return {"mmlu_dir": mmlu_dir, "bbh_dir": bbh_dir, "gsm8k_dir": gsm8k_dir, "mgsm_dir": mgsm_dir,
            "tydiqa_dir": tydiqa_dir, "heldout_examples": heldout_examples, "heldout_shots": heldout_shots,
            "mmlu_split": mmlu_split, "heldin_examples": heldin_examples}


def _setting(key: str):
    return lambda: eval_data()[key]


def _names(tasks) -> list[str]:
    return [register(t) for t in tasks]


HELDOUT = _names(heldout.tasks(_setting("heldout_examples"), _setting("heldout_shots")))
HELDIN = _names(heldin.tasks(_setting("heldin_examples"), _setting("heldout_shots")))
MMLU = _names(mmlu.tasks(_setting("mmlu_dir"), split=_setting("mmlu_split")))
BBH = _names(bbh.tasks(_setting("bbh_dir")))
GSM8K = _names(gsm8k.tasks(_setting("gsm8k_dir")))
MGSM = _names(mgsm.tasks(_setting("mgsm_dir")))
TYDIQA = _names(tydiqa.tasks(_setting("tydiqa_dir")))

SUITES = {
    "heldout": HELDOUT,
    "heldin": HELDIN,
    "mmlu": MMLU,
    "mmlu_direct": [n for n in MMLU if n.startswith("mmlu_direct.")],
    "mmlu_cot": [n for n in MMLU if n.startswith("mmlu_cot.")],
    "bbh": BBH,
    "bbh_direct": [n for n in BBH if n.startswith("bbh_direct.")],
    "bbh_cot": [n for n in BBH if n.startswith("bbh_cot.")],
    "gsm8k": GSM8K,
    "mgsm": MGSM,
    "tydiqa": TYDIQA,
    "flan_paper": MMLU + BBH + TYDIQA + MGSM,
}
for _group, _tasks in (("heldout", HELDOUT), ("heldin", HELDIN)):  # one suite per style: heldin_zs, ...
    for _style in heldout.STYLES:
        SUITES[f"{_group}_{_style}"] = [n for n in _tasks if n.startswith(f"{_group}_{_style}.")]
for _name, _tasks in SUITES.items():
    register_suite(_name, _tasks)


def register_after_gin() -> None:
    """Nothing to rebuild: directories are read from gin when a task is evaluated."""
