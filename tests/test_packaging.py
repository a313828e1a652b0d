"""The package's extras install with the pip that `python3 -m venv` brings (pip 23.2 with Python 3.11: it
compares extra names literally, without PEP 685's normalization), and the jax range allows MaxText's 0.11
while CI pins one version."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.subprocess
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def metadata(tmp_path_factory) -> str:
    """PKG-INFO as setuptools writes it from setup.py (what pip reads)."""
    out = tmp_path_factory.mktemp("egg")
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(out)], cwd=ROOT,
                   check=True, capture_output=True)
    return next(out.glob("*.egg-info")).joinpath("PKG-INFO").read_text()


def test_every_extra_the_readme_installs_is_spelled_as_the_metadata_spells_it(metadata):
    provided = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.M))
    readme = (ROOT / "README.md").read_text()
    asked = set(re.findall(r"pip install -e \"?\.\[([\w-]+)\]", readme)) | set(
        re.findall(r"'flan-ul2r\[([\w-]+)\]'", readme))
    assert {"test", "tpu-compile", "lm-eval"} <= asked, asked
    assert asked <= provided, f"README asks for {sorted(asked - provided)}; metadata has {sorted(provided)}"
    assert not [e for e in provided if "_" in e]  # an underscore never matches on pip < 23.3


def test_jax_range_allows_0_11_and_ci_pins_one_version(metadata):
    reqs = [Requirement(line.split(": ", 1)[1]) for line in metadata.splitlines()
            if line.startswith("Requires-Dist: ")]
    base = [r for r in reqs if r.name == "jax" and r.marker is None]
    assert len(base) == 1 and all(v in base[0].specifier for v in ("0.10.2", "0.11.0", "0.11.2"))
    assert "0.12.0" not in base[0].specifier  # untested majors stay out
    ci = [r for r in reqs if r.name == "jax" and r.marker and r.marker.evaluate({"extra": "test"})]
    assert {str(r.specifier) for r in ci} == {"==0.10.2"} and {"tpu"} in [r.extras for r in ci]


@pytest.mark.skipif(not os.environ.get("FLAN_UL2R_SLOW_TESTS"), reason="set FLAN_UL2R_SLOW_TESTS=1: "
                    "resolves the whole dependency tree from the package index (about 3 to 6 minutes)")
def test_tpu_compile_extra_resolves_with_the_pip_of_a_fresh_venv(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    pip = str(tmp_path / "v" / "bin" / "pip")
    version = subprocess.run([pip, "--version"], check=True, capture_output=True, text=True).stdout
    major, minor = (int(x) for x in version.split()[1].split(".")[:2])
    assert (major, minor) < (23, 3), f"this Python's venv brings a newer pip ({version}); the test needs 23.2"
    run = subprocess.run([pip, "install", "--dry-run", "-e", ".[tpu-compile]"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "does not provide the extra" not in run.stdout + run.stderr
    assert re.search(r"Would install .*\blibtpu-", run.stdout), run.stdout[-2000:]
