"""A built wheel works anywhere: the gin files and the task registrations ship inside the package, so a
`flan-ul2r` installed from the wheel into a fresh venv trains from `--gin_file=runs/ul2r.gin` and inspects
the built-in mixture from a directory outside the checkout. The venv reuses this environment's installed
dependencies (a .pth line, no download) but not its editable flan_ul2r."""
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin/, an empty working directory outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("flan_ul2r-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"flan_ul2r/gin/runs/ul2r.gin", "flan_ul2r/gin/models/tiny.gin",
            "flan_ul2r/gin/pipelines/smoke.gin", "flan_ul2r/tasks/ul2r.py"} <= names, sorted(names)[:20]
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True,
                               text=True).stdout.strip())
    # the dependencies of this environment, after the venv's own site-packages (a plain path line: the
    # editable install's .pth hook in that folder is not run, so only the wheel's flan_ul2r is importable)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return venv / "bin", elsewhere


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLAN_UL2R_GIN_PATH")}
    return subprocess.run([str(bin_dir / "flan-ul2r"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"})


@pytest.mark.slow
def test_the_wheel_imports_its_own_copy(installed):
    bin_dir, elsewhere = installed
    out = subprocess.run([str(bin_dir / "python"), "-c", "import flan_ul2r.tasks, flan_ul2r.gin_utils as g; "
                          "print(flan_ul2r.tasks.__file__); print(g.GIN_DIR)"], cwd=elsewhere,
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""})
    tasks_file, gin_dir = out.stdout.split()
    venv = bin_dir.parent
    assert Path(tasks_file).is_relative_to(venv) and Path(gin_dir).is_relative_to(venv), out.stdout
    assert not Path(tasks_file).is_relative_to(ROOT)


@pytest.mark.slow
def test_the_installed_cli_trains_and_inspects_from_any_directory(installed):
    bin_dir, elsewhere = installed
    model_dir = elsewhere / "run"
    train = _run(bin_dir, elsewhere, "train", "--gin_file=runs/ul2r.gin", "--gin_file=models/tiny.gin",
                 "--gin_file=runs/cpu_smoke.gin", f"--gin.MODEL_DIR={model_dir}", "--gin.TRAIN_STEPS=2")
    assert train.returncode == 0, train.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (model_dir / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2] and (model_dir / "checkpoints" / "2").is_dir()
    inspect = _run(bin_dir, elsewhere, "inspect", "--task", "ul2r", "--num", "3", "--sequence_length", "128")
    assert inspect.returncode == 0, inspect.stderr[-3000:]
    rows = [json.loads(line) for line in inspect.stdout.splitlines()]
    assert len(rows) == 3 and all(r["denoiser"] and r["targets"] for r in rows)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["run"]  # nothing else written where it ran
