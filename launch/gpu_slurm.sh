#!/usr/bin/env bash
# GPU nodes under SLURM: one process per node (all its GPUs), coordinator = the first node.
#   sbatch --nodes=2 --gpus-per-node=8 launch/gpu_slurm.sh /shared/run 20000 --gin_file=gin/models/llama3_8b.gin
#SBATCH --ntasks-per-node=1
set -euo pipefail
model_dir=$1; steps=$2; shift 2
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
srun bash -c "JAX_COORDINATOR_ADDRESS=$head:12345 JAX_NUM_PROCESSES=$SLURM_NNODES \
  JAX_PROCESS_ID=\$SLURM_PROCID flan-ul2r train --gin_file=gin/runs/ul2r.gin \
  --gin_file=gin/partitioning/fsdp.gin --gin.MODEL_DIR='$model_dir' --gin.TRAIN_STEPS=$steps $*"
