"""The embedded default corpus: English prose every Python machine already has, made at run time.

It is the documentation of the installed Python standard library: every module, class and function
docstring of at least `MIN_CHARS` characters, read with `ast` (no module is imported, so nothing runs),
every block of consecutive `#` comment lines of that size that reads as prose (`PROSE_FRACTION` letters),
and the language-reference topics that `pydoc` ships (`pydoc_data/topics.py`, plain string literals).
Files are visited in sorted path order so every machine with the same Python builds the same corpus;
test directories and `test_*` files are left out. One document per docstring / comment block / topic,
whitespace normalised (wrapped lines joined, paragraph breaks kept). Nothing is copied into the repository
and nothing is downloaded. The text is cached as JSONL (`default_corpus_spec()` names it as a `jsonl:`
source) and the tokenized corpus through `corpus_cache`, both keyed by the Python version and stdlib path.
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import sys
import sysconfig
import tempfile
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flan_ul2r.data.corpus.sources import Document, SourceSpec, read_documents
from flan_ul2r.data.corpus.token_cache import TokenCorpus, cache_dir
from flan_ul2r.data.corpus.validation_split import in_split

DEFAULT_CORPUS = "stdlib_docstrings"
MIN_CHARS = 100  # shorter docstrings are mostly one-line summaries or stubs, not prose
PROSE_FRACTION = 0.8  # a comment block counts as prose when >= 80% of its characters are letters/spaces
_SKIP_PARTS = {"test", "tests", "site-packages", "dist-packages", "__pycache__"}
_FORMAT = 4


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


def _comment_blocks(source: bytes) -> Iterator[str]:
    """Runs of consecutive `#` comment lines joined into one paragraph, when long enough and prose-like."""
    block: list[str] = []
    last = -2

    def flush() -> Iterator[str]:
        text = " ".join(" ".join(block).split())
        letters = sum(c.isalpha() or c == " " for c in text)
        if len(text) >= MIN_CHARS and letters >= PROSE_FRACTION * len(text):
            yield text

    try:
        for tok in tokenize.tokenize(io.BytesIO(source).readline):
            if tok.type != tokenize.COMMENT:
                continue
            if tok.start[0] != last + 1 and block:
                yield from flush()
                block = []
            block.append(tok.string.lstrip("#!").strip())
            last = tok.start[0]
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        return
    if block:
        yield from flush()


def _docstrings(path: Path) -> Iterator[str]:
    """Module, class and function docstrings (in `ast.walk` order), then the file's comment blocks."""
    source = path.read_bytes()
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= MIN_CHARS:
                yield _normalise(doc)
    yield from _comment_blocks(source)


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


def extract_documents(root: Path | None = None) -> list[str]:
    """Reads the corpus from the stdlib sources (no cache); deterministic for a given installation."""
    root = root or stdlib_root()
    if not root.is_dir():
        raise FileNotFoundError(f"default corpus: the standard library directory {root} does not exist")
    docs = [d for f in _source_files(root) for d in _docstrings(f)]
    docs.extend(_pydoc_topics(root))
    if not docs:
        raise ValueError(f"default corpus: no docstring of >= {MIN_CHARS} characters under {root}")
    return docs


def default_corpus_key() -> dict[str, Any]:
    return {"corpus": DEFAULT_CORPUS, "python": sys.version.split()[0], "stdlib": str(stdlib_root()),
            "min_chars": MIN_CHARS, "format": _FORMAT}


def _text_cache_path() -> Path:
    digest = hashlib.sha256(json.dumps(default_corpus_key(), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "text" / f"{DEFAULT_CORPUS}-{digest}.jsonl"


def default_corpus_spec() -> SourceSpec:
    """The default corpus as a `jsonl:` source (the cached text file, written atomically on first use)."""
    path = _text_cache_path()
    if not path.is_file():
        docs = extract_documents()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for d in docs:
                    f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return SourceSpec("jsonl", (str(path),), "text", ())


def default_corpus_documents(split: str = "all") -> list[str]:
    """The texts of the corpus's `split` (`validation_split.py`'s rule; from the text cache when present)."""
    return [d.text for d in read_documents(default_corpus_spec()) if in_split(d.provenance, split)]


def load_default_corpus(vocab: Any, split: str = "all") -> TokenCorpus:
    """The default corpus tokenized with `vocab`, cached under the user's cache directory."""
    def documents(stats: dict[str, Any]) -> list[Document]:
        docs = list(read_documents(default_corpus_spec()))
        stats.update(source_documents=len(docs), text_bytes=sum(len(d.text.encode("utf-8")) for d in docs))
        return docs

    return TokenCorpus.cached(default_corpus_key(), documents, vocab, name=DEFAULT_CORPUS).split(split)
