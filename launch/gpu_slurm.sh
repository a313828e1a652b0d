#!/usr/bin/env bash
# Multi-node, multi-GPU training (or a pipeline, or an eval: --verb) under SLURM, one process per GPU: jax.distributed reads SLURM's variables
# (coordinator = the first node of the step, port from the job id; process count and ids; each process
# takes the GPU of its SLURM_LOCALID). Submit with sbatch, or run inside an salloc allocation:
#
#   sbatch --nodes=2 --gpus-per-node=8 --ntasks-per-node=8 launch/gpu_slurm.sh \
#       --model_dir /shared/runs/u-llama --train_steps 20000 [--run_gin gin/runs/ul2r.gin] [--dry_run] \
#       [--verb train|pipeline|eval] [-- --gin_file=gin/models/llama3_8b.gin --gin.BATCH_SIZE=64]
#
# --verb train (default) needs --train_steps; pipeline: `--verb pipeline -- --gin_file=gin/pipelines/...`.
# MODEL_DIR must be storage every node sees (a shared filesystem, or gs://). Five minutes before the time
# limit (and on preemption) SLURM sends SIGTERM: the run saves a checkpoint (or, still starting up, stops
# with nothing new to save), exits 75, and this script requeues the job (scontrol requeue), which resumes
# from the newest checkpoint. --dry_run prints the commands, runs none.
#SBATCH --job-name=flan-ul2r
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --requeue
#SBATCH --signal=TERM@300
#SBATCH --open-mode=append
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

model_dir="" train_steps="" run_gin="" verb=train dry_run=0
while (( $# )); do
  case $1 in
    --model_dir) model_dir=$2; shift 2 ;;
    --train_steps) train_steps=$2; shift 2 ;;
    --run_gin) run_gin=$2; shift 2 ;;
    --verb) verb=$2; shift 2 ;;
    --dry_run) dry_run=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "gpu_slurm.sh: unknown argument $1 (flan-ul2r flags go after --)" >&2; usage 2 ;;
  esac
done
if (( ! dry_run )) && [[ -z ${SLURM_JOB_ID:-} ]]; then
  echo "gpu_slurm.sh: not inside a SLURM job: submit it with sbatch (see --help), or add --dry_run" >&2
  exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=launch/common.sh
. "$repo/launch/common.sh"
check_verb gpu_slurm.sh
gin_flags=()
if [[ -n $run_gin ]]; then gin_flags+=("--gin_file=$run_gin"); fi

tasks_per_node=${SLURM_NTASKS_PER_NODE:-8}
nodes=${SLURM_JOB_NODELIST:-"<the allocation's nodes>"}
echo "# nodes: $nodes; coordinator: the first of them" \
  "(jax.distributed reads SLURM_STEP_NODELIST, SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID)"
if [[ -n $model_dir ]]; then echo "# TensorBoard: tensorboard --logdir $model_dir"; fi
rc=0
# No --kill-on-bad-exit: after a preemption every process exits 75 on its own once the checkpoint is
# complete; killing the others at the first exit could cut the last one's save short.
run srun --ntasks-per-node="$tasks_per_node" --chdir="$repo" \
  env FLAN_UL2R_MULTIHOST=1 python -m flan_ul2r.cli "$verb" "${gin_flags[@]}" "${verb_flags[@]}" "$@" || rc=$?
if (( dry_run )); then echo "# then, on exit status 75 (preempted after saving a checkpoint):"; fi
if (( rc == 75 || dry_run )); then
  echo "# requeueing the job; it resumes from the checkpoint"
  run scontrol requeue "${SLURM_JOB_ID:-\$SLURM_JOB_ID}"
fi
exit "$rc"
