"""The house rules that keep the package readable: packages in layers (every import statement points down,
siblings never import each other), no import cycles, `data/` and `models/` never import each other, models
import no TensorFlow or seqio, no private name imported across packages, and no function is longer than
60 lines."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60


# The layers, lowest first (docs/ARCHITECTURE.md draws them). A module may import a module of its own
# package or of a lower layer; packages in one layer are siblings and never import each other. "" is the
# package's own __init__ (`flan_ul2r.load_model`, a lazy door to api).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "hidden_imports", "compile_cache"),  # error types | imports without unused extras | XLA cache
    ("fs",),
    ("tf_devices",),                             # TF off the accelerators, libtpu's environment
    ("data", "models"),                          # text -> batches | the flax Decoder
    ("partitioning", "checkpoint_health"),       # meshes and shardings | what is wrong with a checkpoint
    ("checkpoint_io",),                          # params-only checkpoints (api, convert and training)
    ("decoding",),                               # generation, scoring, LoadedModel
    ("convert",),                                # HF safetensors in and out
    ("api",),                                    # load_model
    ("",),                                       # flan_ul2r/__init__.py: flan_ul2r.load_model
    ("evaluation",),
    ("training",),
    ("pipeline",),
    ("tasks",),                                  # seqio registrations (only the edge imports them)
    ("gin_utils",),
    ("main",),
    ("cli",),
)


def _module_files(base: Path = ROOT / "flan_ul2r") -> dict[str, Path]:
    """Module name -> file, for every module of the flan_ul2r package (tasks/ included)."""
    out = {}
    for f in base.rglob("*.py"):
        parts = list(f.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["flan_ul2r", *parts])] = f
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that `name` imports anywhere in its file (module level or inside functions)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [base]).strip(".")
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    files = _module_files()
    return {name: _imports(name, path, set(files)) for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own submodules
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_data_and_models_never_import_each_other():
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith("flan_ul2r.data"):
            assert not [d for d in deps if d.startswith("flan_ul2r.models")], name
        if name.startswith("flan_ul2r.models"):
            assert not [d for d in deps if d.startswith(("flan_ul2r.data", "flan_ul2r.tasks"))], name


def test_models_import_no_tensorflow_or_seqio():
    for f in (ROOT / "flan_ul2r" / "models").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("tensorflow", "seqio")], f


def _import_statements(name: str, path: Path, known: set[str]) -> Iterator[tuple[int, str, list[str]]]:
    """(line, our module imported, names taken from it) for every import statement in the file, at module
    level or inside functions; `from flan_ul2r import fs` imports flan_ul2r.fs, not the package."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]

    def ours(t: str) -> str | None:
        while t and t not in known:
            t = t.rpartition(".")[0]
        return t or None

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if (t := ours(a.name)) is not None:
                    yield node.lineno, t, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [base]).strip(".")
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in known:
                    yield node.lineno, full, []
                elif (t := ours(base)) is not None:
                    yield node.lineno, t, [a.name]


def _package(module: str) -> str:
    """The top-level part a module belongs to: flan_ul2r.data.loader -> data, flan_ul2r.fs -> fs."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(files: dict[str, Path], layers=LAYERS) -> list[str]:
    """Every import statement that points up a layer or across to a sibling, or takes a private name
    from another package; a package missing from `layers` is reported too."""
    rank = {pkg: i for i, layer in enumerate(layers) for pkg in layer}
    known, found = set(files), []
    for name, path in sorted(files.items()):
        here = _package(name)
        if here not in rank:
            found.append(f"{path.relative_to(path.parents[len(name.split('.')) - 1])}: package {here!r} is "
                         "in no layer (add it to LAYERS and to docs/ARCHITECTURE.md)")
            continue
        for line, target, taken in _import_statements(name, path, known):
            there = _package(target)
            if there == here or there not in rank:
                continue
            where = f"{name} (line {line})"
            if rank[there] >= rank[here]:
                kind = "a sibling of" if rank[there] == rank[here] else "a layer above"
                found.append(f"{where} imports {target}: {there!r} is {kind} {here!r}")
            private = [t for t in taken if t.startswith("_")]
            if private:
                found.append(f"{where} takes private {private} from {target}")
    return found


def test_every_import_points_down_the_layers():
    assert layer_violations(_module_files()) == []


def test_the_layer_check_reports_an_import_up_or_across(tmp_path):
    """The check on temporary modules placed in the real package map: a models module importing training
    (inside a function), a data module importing models (siblings), a private name across packages."""
    probes = {
        "flan_ul2r.models.probe_up": "def f():\n    from flan_ul2r.training import trainer\n",
        "flan_ul2r.data.probe_across": "import flan_ul2r.models.config\n",
        "flan_ul2r.evaluation.probe_private": "from flan_ul2r.data.flan.formats import _read\n",
        "flan_ul2r.training.probe_fine": "from flan_ul2r import fs\nfrom flan_ul2r.data.core import loader\n",
    }
    files = _module_files()
    for name, text in probes.items():
        path = tmp_path / "flan_ul2r" / Path(*name.split(".")[1:]).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[name] = path
    found = [v for v in layer_violations(files) if ".probe_" in v]
    assert found == [
        "flan_ul2r.data.probe_across (line 1) imports flan_ul2r.models.config: 'models' is a sibling of "
        "'data'",
        "flan_ul2r.evaluation.probe_private (line 1) takes private ['_read'] from "
        "flan_ul2r.data.flan.formats",
        "flan_ul2r.models.probe_up (line 2) imports flan_ul2r.training.trainer: 'training' is a layer above "
        "'models'",
    ]


# Modules that may use pathlib, and why: none of them is handed a path a user gives (MODEL_DIR, data,
# checkpoints, outputs go through flan_ul2r/fs.py, which speaks local disks and gs:// alike).
PATHLIB_ALLOWED = {
    "data/corpus/token_cache.py": "the token cache under cache_dir() ($FLAN_UL2R_CACHE), local (mmap)",
    "data/vocab/default_bpe.py": "the BPE vocabulary trained once into the local cache_dir()",
    "data/corpus/default_corpus.py": "the Python standard library's own files (the default corpus)",
    "gin_utils.py": "the gin files installed with the package, and the local search path",
}


def pathlib_users(files: dict[str, Path]) -> list[str]:
    """Modules that import pathlib, or etils' Path under pathlib's name, outside PATHLIB_ALLOWED."""
    found = []
    for path in sorted(files.values()):
        package = ROOT / "flan_ul2r"
        rel = path.relative_to(package).as_posix() if path.is_relative_to(package) else path.name
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.module == "etils.epath" and any(a.name == "Path" for a in node.names):
                    found.append(f"{rel}:{node.lineno} imports etils' Path as `Path` (use epath.Path)")
            if "pathlib" in names and rel not in PATHLIB_ALLOWED:
                found.append(f"{rel}:{node.lineno} imports pathlib: user paths go through flan_ul2r.fs")
    return found


def test_user_paths_go_through_fs():
    assert pathlib_users(_module_files()) == []
    for rel in PATHLIB_ALLOWED:  # the allow-list names files that exist and need it
        assert "pathlib" in (ROOT / "flan_ul2r" / rel).read_text(), rel


def test_the_pathlib_check_reports_a_module(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef f(d):\n    from pathlib import Path\n    return Path(d)\n")
    alias = tmp_path / "alias.py"
    alias.write_text("from etils.epath import Path\n")
    assert pathlib_users({"bad": bad, "alias": alias}) == [
        "alias.py:1 imports etils' Path as `Path` (use epath.Path)",
        "bad.py:4 imports pathlib: user paths go through flan_ul2r.fs"]


def test_no_function_over_60_lines():
    long = []
    for f in (ROOT / "flan_ul2r").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_the_suite_starts_with_its_longest_files(request):
    """tests/conftest.py LONGEST_FIRST names files that exist, and the collection starts with them, in order
    (a renamed file would silently fall back to the end, where it keeps one worker busy alone)."""
    from tests.conftest import LONGEST_FIRST

    missing = [name for name in LONGEST_FIRST if not (ROOT / "tests" / f"{name}.py").is_file()]
    assert not missing, missing
    files = list(dict.fromkeys(item.path.stem for item in request.session.items))
    collected = [name for name in LONGEST_FIRST if name in files]
    assert files[:len(collected)] == collected
