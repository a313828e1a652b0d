"""The persistent cache of compiled XLA programs that every `flan-ul2r` verb turns on
(flan_ul2r/compile_cache.py): where it goes, that a second process reads what the first compiled, and
how a user moves it or turns it off. Each case is a fresh process: JAX reads the cache's settings when it
is imported."""
import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# a program that takes a moment to compile; JAX_LOG_COMPILES=1 makes JAX log each persistent-cache hit
PROBE = textwrap.dedent("""\
    import flan_ul2r.cli, flan_ul2r.compile_cache as compile_cache
    {start}
    import jax, jax.numpy as jnp
    def probe(x):
        for i in range(20):
            x = jnp.tanh(x @ x.T + i) * jnp.cos(x)
        return x.sum()
    print(repr(jax.config.jax_compilation_cache_dir), float(jax.jit(probe)(jnp.eye(32))))
""")


def _run(tmp_path: Path, start: str, **env: str) -> tuple[str | None, float, bool]:
    """Runs PROBE in a fresh process with XDG_CACHE_HOME=tmp_path/xdg and `env` on top of this one's
    environment without JAX_COMPILATION_CACHE_DIR (the suite's own cache, tests/conftest.py); returns
    (the cache folder JAX uses, if any, the probe's value, whether JAX read the probe from the cache)."""
    base = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    base.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_LOG_COMPILES="1",
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    out = subprocess.run([sys.executable, "-c", PROBE.format(start=start)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**base, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    folder, value = out.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    hit = "Persistent compilation cache hit for 'jit_probe'" in out.stderr
    return ast.literal_eval(folder) or None, float(value), hit


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_cli_start_caches_programs_and_a_second_process_reads_them(tmp_path):
    default = tmp_path / "xdg" / "flan_ul2r" / "xla"
    folder, first, hit = _run(tmp_path, "flan_ul2r.cli.prepare_process()")  # as every verb starts
    assert folder == str(default) and not hit
    stored = sorted(p.name for p in default.iterdir())
    assert any(name.startswith("jit_probe-") for name in stored), stored
    folder, second, hit = _run(tmp_path, "compile_cache.enable_by_default()")
    assert folder == str(default) and hit and second == first
    assert sorted(p.name for p in default.iterdir()) == stored  # read, and no new entry


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_chosen_folder_wins_and_an_empty_variable_turns_the_cache_off(tmp_path):
    mine = tmp_path / "mine"
    start = "compile_cache.enable_by_default()"
    folder, value, hit = _run(tmp_path, start, JAX_COMPILATION_CACHE_DIR=str(mine))
    assert folder == str(mine) and not hit and any(mine.iterdir())
    assert _run(tmp_path, start, JAX_COMPILATION_CACHE_DIR=str(mine))[2]
    for _ in range(2):
        folder, off, hit = _run(tmp_path, start, JAX_COMPILATION_CACHE_DIR="")
        assert folder is None and not hit and off == value
    assert not (tmp_path / "xdg").exists()
