"""The embedded default corpus: English prose every Python machine already has, made at run time.

It is the documentation of the installed Python standard library: every module, class and function
docstring of at least `MIN_CHARS` characters, read with `ast` (no module is imported, so nothing runs),
plus the language reference topics that `pydoc` ships (`pydoc_data/topics.py`). Files are visited in
sorted order so every machine with the same Python builds the same corpus; test suites and IDLE are left
out. About 2 MB of text, one document per docstring / topic. Nothing is copied into the repository and
nothing is downloaded; the tokenized corpus is cached (see `corpus_cache`).
"""
from __future__ import annotations

import ast
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flan_ul2r.data.corpus_cache import TokenCorpus

DEFAULT_CORPUS = "stdlib_docs"
MIN_CHARS = 100  # shorter docstrings are mostly one-line summaries or stubs
_SKIP_PARTS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "turtledemo"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _normalise(text: str) -> str:
    """Joins wrapped lines of a paragraph; keeps paragraph breaks."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _source_files(root: Path) -> list[Path]:
    files = []
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root).parts
        if any(x in _SKIP_PARTS or x.startswith("test_") for x in parts):
            continue
        files.append(p)
    return files


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= MIN_CHARS:
                yield _normalise(doc)


def _pydoc_topics(root: Path) -> Iterator[str]:
    """The language-reference topics of `pydoc_data/topics.py` (a dict literal of long strings)."""
    path = root / "pydoc_data" / "topics.py"
    if not path.is_file():
        return
    tree = ast.parse(path.read_bytes())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                    if isinstance(value.value, str) and len(value.value) >= MIN_CHARS:
                        yield _normalise(value.value)


def default_corpus_documents() -> list[str]:
    """The corpus as a list of documents, deterministic for a given Python installation."""
    root = stdlib_root()
    docs = [d for f in _source_files(root) for d in _docstrings(f)]
    docs.extend(_pydoc_topics(root))
    return docs


def default_corpus_key() -> dict[str, Any]:
    root = stdlib_root()
    return {"corpus": DEFAULT_CORPUS, "python": sys.version.split()[0], "stdlib": str(root),
            "min_chars": MIN_CHARS, "format": 2}


def load_default_corpus(vocab: Any) -> TokenCorpus:
    """The default corpus tokenized with `vocab`, cached under the user's cache directory."""
    return TokenCorpus.cached(default_corpus_key(), default_corpus_documents, vocab, name=DEFAULT_CORPUS)
