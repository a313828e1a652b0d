"""`--cpu-durations` (tests/_cpu_durations.py): CPU per test file, child processes included, summed over
the phases of each test and carried from pytest-xdist workers to the summary."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests._cpu_durations import PROPERTY, per_file

ROOT = Path(__file__).resolve().parent.parent
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def _report(nodeid, when, own, children, wall):
    return SimpleNamespace(nodeid=nodeid, when=when, user_properties=[(PROPERTY, [own, children, wall])])


def test_per_file_sums_the_phases_and_counts_each_test_once():
    reports = [_report("tests/a.py::t1", "setup", 2.0, 0.0, 2.5),
               _report("tests/a.py::t1", "call", 1.0, 3.0, 4.0),
               _report("tests/a.py::t1", "teardown", 0.5, 0.0, 0.5),
               _report("tests/a.py::t2", "call", 1.0, 0.0, 1.0),
               _report("tests/b.py::t", "call", 0.25, 0.0, 0.5),
               SimpleNamespace(nodeid="tests/c.py::t", when="call", user_properties=[])]  # not measured
    assert per_file(reports) == {"tests/a.py": [4.5, 3.0, 8.0, 2], "tests/b.py": [0.25, 0.0, 0.5, 1]}


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_child_process_counts_for_its_test_and_sleeping_does_not(tmp_path, workers):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_child.py").write_text(textwrap.dedent(f"""\
        import subprocess, sys
        def test_busy_child():
            subprocess.run([sys.executable, "-c", {BUSY.format(s=1.0)!r}], check=True)
        """))
    (tmp_path / "test_here.py").write_text(
        "import time\n\ndef test_busy_here():\n" + textwrap.indent(BUSY.format(s=0.6), "    ")
        + "\ndef test_sleeping():\n    time.sleep(0.5)\n")
    cmd = [sys.executable, "-m", "pytest", "-p", "tests._cpu_durations", "-p", "no:cacheprovider",
           "-n", workers, "--cpu-durations=0", "-q", str(tmp_path)]
    out = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {m[5]: [float(x) for x in m[:4]] + [int(m[4])] for m in re.findall(
        r"^\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\S+)$", out.stdout, re.M)}
    assert set(rows) == {"test_child.py", "test_here.py"}, out.stdout
    child, here = rows["test_child.py"], rows["test_here.py"]
    assert child[2] >= 0.95 and child[1] < 0.5 and child[4] == 1  # the child's second, not the test's
    assert here[1] >= 0.59 and here[2] == 0 and here[4] == 2
    assert here[3] >= 1.05 and here[1] < 0.9  # the half second asleep is wall time only
    assert list(rows) == ["test_child.py", "test_here.py"]  # most CPU first
    total = re.search(r"^\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+all 2 files", out.stdout, re.M)
    assert total and float(total[1]) == pytest.approx(child[0] + here[0], abs=0.15), out.stdout
