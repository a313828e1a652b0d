"""The data package's layout: sub-packages in one order (a lower one never imports a higher one), and
every module path of the flat layout before them still imports, as the same module object."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import flan_ul2r.data as data

DATA = Path(data.__file__).parent
ORDER = ("corpus", "vocab", "core", "ul2", "flan")  # lowest first, as data/__init__.py states


def test_each_old_module_path_is_the_module_at_its_new_home():
    assert len(data.MOVED) == len(set(data.MOVED.values())) == 36
    for old, new in data.MOVED.items():
        module = importlib.import_module(f"flan_ul2r.data.{new}")
        assert importlib.import_module(f"flan_ul2r.data.{old}") is module
        assert not (DATA / f"{old}.py").exists()
    from flan_ul2r.data.denoisers import UL2R
    from flan_ul2r.data.flan.instruction_tasks import register_instruction_task as new_register
    from flan_ul2r.data.instruction_tasks import register_instruction_task
    from flan_ul2r.data.preprocessors import ul2_denoise
    from flan_ul2r.data.ul2 import denoisers, preprocessors

    assert ul2_denoise is preprocessors.ul2_denoise and UL2R is denoisers.UL2R
    assert register_instruction_task is new_register is data.register_instruction_task
    spec = importlib.import_module("flan_ul2r.data.preprocessors").__spec__
    assert spec.name == "flan_ul2r.data.ul2.preprocessors"  # the alias leaves the module its own spec


def test_public_surface_resolves():
    for name in data.__all__:
        home = importlib.import_module(f"flan_ul2r.data.{data._PUBLIC[name]}")
        assert getattr(data, name) is getattr(home, name)


def test_a_lower_sub_package_never_imports_a_higher_one():
    bad = []
    for path in DATA.rglob("*.py"):
        parts = path.relative_to(DATA).parts
        if len(parts) < 2:
            continue
        level = ORDER.index(parts[0])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flan_ul2r.data."):
                target = node.module.split(".")[2]
                if target in ORDER and ORDER.index(target) > level:
                    bad.append(f"{path.relative_to(DATA)} imports {node.module}")
    assert not bad, bad
