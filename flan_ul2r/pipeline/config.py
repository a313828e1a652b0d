"""Typed configs of a pipeline (bound in gin by flan_ul2r/main/pipeline.py; gin/pipelines/*.gin)."""
from __future__ import annotations

import dataclasses

from flan_ul2r.training.config import RunConfig


@dataclasses.dataclass(frozen=True)
class EvalStageConfig:
    """How the four models are evaluated: eval suites (flan_ul2r.tasks.evals; `heldout` needs no files),
    examples per task (None = all), batch size, self-consistency samples and temperature (1 = greedy),
    the infilling check (U-PaLM section 4) on `infilling_examples` held-out corpus passages
    (`infilling_windows` non-overlapping windows per held-out document; None = all of them), the causal LM
    loss on the held-out corpus documents (`lm_loss`), in-context copying of held-out passages read twice
    (`copying`: evaluation/copying.py, the prerequisite of infilling), and what to do with a prompt longer
    than the model's context (`too_long`: "error", or "skip" and report the count)."""

    suites: tuple[str, ...] = ("heldout",)
    max_examples: int | None = None
    batch_size: int = 8
    num_samples: int = 1
    temperature: float = 0.7
    infilling_examples: int = 0
    infilling_windows: int | None = 1
    lm_loss: bool = False
    copying: bool = False
    too_long: str = "error"


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """base -> UL2R -> Flan (on base and on U) -> evaluation of all four -> report.

    The base is `pretrain` (a RunConfig trained from scratch: the embedded default) or `import_hf_dir`
    (an HF safetensors directory, imported with `import_dtype`); `base_pretraining_tokens` states an
    imported model's pretraining tokens for the compute ledger (e.g. 15e12 for Llama 3). `ul2r` and `flan`
    are the stage RunConfigs (their model_dir and initial checkpoint are set per stage); `flan` runs twice,
    from the base and from the U model. `export_hf` exports the Flan-U model to MODEL_DIR/export-hf.
    """

    model_dir: str
    ul2r: RunConfig
    flan: RunConfig
    pretrain: RunConfig | None = None
    import_hf_dir: str | None = None
    import_dtype: str = "float32"
    base_pretraining_tokens: float | None = None
    eval: EvalStageConfig = EvalStageConfig()
    export_hf: bool = False
    title: str = "flan-ul2r pipeline: base, +UL2R, +Flan, +UL2R+Flan"

    def __post_init__(self) -> None:
        if (self.pretrain is None) == (self.import_hf_dir is None):
            raise ValueError("pipeline: set exactly one of `pretrain` (a base trained from scratch) and "
                             "`import_hf_dir` (an HF model directory)")
        if self.import_hf_dir is not None and self.base_pretraining_tokens is None:
            raise ValueError("pipeline: an imported base needs `base_pretraining_tokens` (its pretraining "
                             "token count, e.g. 15e12 for Llama 3) for the compute ledger")
