"""torch and transformers load only where they are used: no module of the package and no test module imports
them at module level (inside a function is fine), so `flan-ul2r` starts and the test suite collects without
them; and importing every module of the package, as a fresh process does, leaves them unloaded, and with
them the extras that tensorboardX and Keras would load for features we do not use: torch, scikit-learn,
pandas (flan_ul2r/hidden_imports.py)."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers")


def module_level_imports(path: Path, names=HEAVY) -> list[str]:
    """`file:line module` for each import of `names` that runs when `path` is imported (module body, class
    bodies, `if`/`try` blocks), not inside a function."""
    found, shown = [], path.relative_to(ROOT) if path.is_relative_to(ROOT) else path

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                modules = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and not child.level:
                modules = [child.module or ""]
            else:
                modules = []
            found.extend(f"{shown}:{child.lineno} {m}" for m in modules
                         if m.split(".")[0] in names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_no_module_imports_torch_or_transformers_at_module_level():
    files = sorted([*(ROOT / "flan_ul2r").rglob("*.py"), *(ROOT / "tests").glob("*.py")])
    assert len(files) > 100
    offenders = [hit for f in files for hit in module_level_imports(f)]
    assert not offenders, "import these inside the function that needs them:\n" + "\n".join(offenders)


def test_the_check_finds_a_module_level_import(tmp_path):
    """A test of the test: top level, under `if`/`try`, in a class body are found; inside a function not."""
    module = tmp_path / "probe.py"
    module.write_text(textwrap.dedent("""\
        import os
        import torch.nn
        try:
            from transformers import AutoModel
        except ImportError:
            pass
        class A:
            import torch
        def f():
            import transformers
            return transformers
    """))
    found = module_level_imports(module)
    assert [x.split(":", 1)[1] for x in found] == ["2 torch.nn", "4 transformers", "8 torch"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_fresh_process_leaves_torch_sklearn_pandas_and_matplotlib_unloaded(tmp_path):
    """As a fresh `flan-ul2r` process does: the CLI's start (TensorFlow, whose Keras imports scikit-learn,
    pandas and matplotlib whenever they are installed, as they are here), every module imported, then a
    run's TensorBoard writer (whose tensorboardX imports torch whenever it is installed) writes a scalar
    that reads back; pandas and matplotlib still import afterwards, for the loaders and the loss plot."""
    code = textwrap.dedent(f"""\
        import importlib, pkgutil, sys
        import flan_ul2r, flan_ul2r.cli
        flan_ul2r.cli.prepare_process()
        names = [m.name for m in pkgutil.walk_packages(flan_ul2r.__path__, "flan_ul2r.")]
        for name in names:
            importlib.import_module(name)
        from flan_ul2r.training.tensorboard import summary_writer
        writer = summary_writer({str(tmp_path / "tb")!r})
        writer.add_scalar("train/loss", 2.5, 7)
        writer.close()
        loaded = sorted(m for m in ("torch", "transformers", "sklearn", "pandas", "matplotlib")
                        if m in sys.modules)
        import pandas
        from flan_ul2r.training.metrics import plot_losses
        metrics = {str(tmp_path / "metrics.jsonl")!r}
        open(metrics, "w").write('{{"step": 1, "loss": 3.0}}\\n{{"step": 2, "loss": 2.0}}\\n')
        plot_losses(metrics, {str(tmp_path / "loss.png")!r})
        print(len(names), pandas.DataFrame({{"a": [1, 2]}})["a"].sum(), loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    count, total, loaded = out.stdout.strip().splitlines()[-1].split(" ", 2)
    assert int(count) > 100 and int(total) == 3 and loaded == "[]", out.stdout
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from tests.test_remote_fs import _events  # the event file's TFRecord framing, read by hand

    (event_file,) = (tmp_path / "tb").iterdir()
    events = _events(event_file.read_bytes())
    scalars = [(e.step, v.tag, v.simple_value) for e in events for v in e.summary.value]
    assert scalars == [(7, "train/loss", 2.5)]


def test_without_blocks_an_absent_package_for_the_block_only(tmp_path, monkeypatch):
    """Inside `without`, a package not loaded yet fails to import as if it were not installed (a library's
    `except ImportError` branch runs); after the block it imports; a loaded package is never blocked."""
    from flan_ul2r import hidden_imports

    (tmp_path / "probe_extra").mkdir()
    (tmp_path / "probe_extra" / "__init__.py").write_text("VALUE = 7\n")
    (tmp_path / "probe_library.py").write_text(
        "try:\n    import probe_extra\nexcept ImportError:\n    probe_extra = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("probe_extra", "probe_library"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with hidden_imports.without("probe_extra", "json") as blocked:
        import json  # noqa: F401  (loaded before: not blocked)

        import probe_library
        with pytest.raises(ImportError):
            import probe_extra  # noqa: F401
    assert blocked == ["probe_extra"] and probe_library.probe_extra is None
    import probe_extra

    assert probe_extra.VALUE == 7 and sys.modules["probe_extra"] is probe_extra
