"""`--cpu-durations=N`: the N test files that cost the most CPU time, counting the child processes they start.

pytest's `--durations` gives wall time, which on 2 busy cores mostly measures the other worker: a test that
compiled for 20 s of CPU can show 40 s, and one whose work happens in a child process (the CLI, a training
run) shows only its waiting. The suite's length is its CPU time over the cores (`pytest.ini` keeps both
busy), so speeding it up starts from where the CPU goes:

    python -m pytest -q --cpu-durations=25

Each phase (setup, call, teardown) of a test records the CPU seconds of the process that ran it (user +
system, all its threads) and of the child processes it started and waited for (`RUSAGE_CHILDREN`: a child
counts once it has been reaped, as `subprocess.run` does); the reports carry them to the main process
(pytest-xdist passes `user_properties` on), which sums them per file at the end, with the wall time beside
them and the suite's total. A worker's start-up and collection are not in any test and not in the total.
"""
from __future__ import annotations

import collections
import resource
import time

import pytest

PROPERTY = "cpu_seconds"  # (in-process, children, wall) of one phase, in report.user_properties
_PHASES = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-durations", type=int, default=None, metavar="N",
                     help="show the N test files with the most CPU time, child processes included (0: all)")


def _cpu_now() -> tuple[float, float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime, time.perf_counter()


def _measured(item: pytest.Item, phase: str):
    """The body of a phase's hook wrapper: runs the phase, then stores its CPU and wall seconds."""
    if item.config.getoption("cpu_durations") is None:
        yield
        return
    start = _cpu_now()
    yield
    end = _cpu_now()
    item.stash.setdefault(_PHASES, {})[phase] = tuple(b - a for a, b in zip(start, end))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    yield from _measured(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    yield from _measured(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    yield from _measured(item, "teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    measured = item.stash.get(_PHASES, {}).get(call.when)
    if measured is not None:
        outcome.get_result().user_properties.append((PROPERTY, list(measured)))


def per_file(reports) -> dict[str, list[float]]:
    """{test file: [in-process CPU s, children's CPU s, wall s, tests]} summed over the reports' phases."""
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for report in reports:
        for name, value in getattr(report, "user_properties", ()):
            if name == PROPERTY:
                row = files[report.nodeid.split("::")[0]]
                for i in range(3):
                    row[i] += value[i]
                row[3] += report.when == "call"
    return dict(files)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    n = config.getoption("cpu_durations")
    if n is None or hasattr(config, "workerinput"):
        return
    files = per_file(r for reports in terminalreporter.stats.values() for r in reports)
    rows = sorted(files.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
    own, children = sum(r[0] for r in files.values()), sum(r[1] for r in files.values())
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", f"CPU time per test file ({'all' if n == 0 else f'top {n}'})")
    write(f"{'CPU s':>8} {'in-process':>10} {'children':>9} {'wall s':>8} {'tests':>5}  file")
    for path, (a, b, wall, tests) in rows[: n or None]:
        write(f"{a + b:8.1f} {a:10.1f} {b:9.1f} {wall:8.1f} {int(tests):5d}  {path}")
    write(f"{own + children:8.1f} {own:10.1f} {children:9.1f} {'':>8} {'':>5}  all {len(files)} files "
          "(a worker's start-up and collection not included)")
