"""Data side: corpora, vocabularies, seekable seqio tasks and the loader, UL2 denoisers, Flan data.

Sub-packages, lowest first (each imports only those before it; tests/test_data_layout.py checks it):
- `corpus/`: source specs and readers, the token cache, the default corpus, document streams, the
  validation split;
- `vocab/`: vocabularies with sentinels and UL2 mode tokens, the default vocabulary, the default BPE
  (trained on the default corpus);
- `core/`: seqio's registry, seekable tasks, example streams, the training loader, the feature converter;
- `ul2/`: noise masks, denoisers, seqio preprocessors, chunking, the built-in UL2R tasks;
- `flan/` (and `flan/suite/`, the embedded instruction suite): templates, renderer, instruction tasks.

Never imports `flan_ul2r.models`: data and models stay apart; only trainer/pipeline/cli join them.
The names below are the public surface, imported on first use (importing this package loads no
TensorFlow). Module paths of the flat layout before the sub-packages (`flan_ul2r.data.preprocessors`,
`flan_ul2r.data.instruction_tasks`, ...) still import: each is the same module object as its new home.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from typing import Any

_PUBLIC = {
    "get_vocabulary": "vocab.vocabularies",
    "default_vocabulary": "vocab.default_vocabulary",
    "Denoiser": "ul2.denoisers",
    "UL2R": "ul2.denoisers",
    "ul2_denoise": "ul2.preprocessors",
    "SeekableTask": "core.seekable",
    "register_seekable_task": "core.seekable",
    "register_seekable_mixture": "core.seekable",
    "Template": "flan.templates",
    "register_instruction_task": "flan.instruction_tasks",
    "eval_prompts": "flan.eval_prompts",
}
__all__ = sorted(_PUBLIC)

# flat module name before the sub-packages -> its home now
MOVED = {
    "vocabularies": "vocab.vocabularies", "special_tokens": "vocab.special_tokens",
    "hf_vocabulary": "vocab.hf_vocabulary", "default_bpe": "vocab.default_bpe",
    "defaults": "vocab.default_vocabulary",
    "sources": "corpus.sources", "corpus_cache": "corpus.token_cache",
    "default_corpus": "corpus.default_corpus",
    "stream_source": "corpus.document_stream",
    "registry": "core.registry", "indexed": "core.seekable", "loader": "core.loader",
    "streams": "core.example_streams", "feature_converter": "core.feature_converter",
    "data_errors": "core.tfdata_errors",
    "noise": "ul2.noise", "denoisers": "ul2.denoisers", "preprocessors": "ul2.preprocessors",
    "chunking": "ul2.chunking", "ul2r_tasks": "ul2.cached_tasks", "corpus_tasks": "ul2.corpus_tasks",
    "flan_collection": "flan.collection", "flan_eval": "flan.eval_prompts", "flan_formats": "flan.formats",
    "flan_layout": "flan.layout", "flan_mixing": "flan.mixing", "flan_patterns": "flan.patterns",
    "flan_pieces": "flan.pieces", "flan_plan": "flan.plan", "templates": "flan.templates",
    "instruction_tasks": "flan.instruction_tasks", "heldout_leakage": "flan.heldout_leakage",
    "instruction_suite": "flan.suite.tasks", "suite_benchmarks": "flan.suite.benchmarks",
    "suite_generators": "flan.suite.generators", "suite_words": "flan.suite.words",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `flan_ul2r.data.<old name>` as the module at its new home (the same object)."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        module = importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")
        self.home_spec = module.__spec__  # the import system sets the alias spec on it next
        return module

    def exec_module(self, module: Any) -> None:
        """Already executed at its new home; it keeps its own spec."""
        module.__spec__ = self.home_spec


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
