"""flan-ul2r: UL2R and Flan for decoder-only language models on JAX.

The package keeps its imports lazy: `import flan_ul2r` is cheap, heavy stacks (TensorFlow, JAX)
load only when a submodule needs them.
"""
from __future__ import annotations

__version__ = "0.1.0"


def load_model(path: str, **kwargs):
    """Loads an HF safetensors directory or a flan-ul2r checkpoint for notebooks (see `flan_ul2r.api`)."""
    from flan_ul2r.api import load_model as _load_model

    return _load_model(path, **kwargs)
