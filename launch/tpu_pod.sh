#!/usr/bin/env bash
# Cloud TPU pod slice (multi-host): the same command on every worker; jax.distributed auto-detects the
# slice (FLAN_UL2R_MULTIHOST=1). MODEL_DIR must be shared storage (gs://...).
#   launch/tpu_pod.sh TPU_NAME ZONE gs://bucket/run 20000 --gin_file=gin/models/palm_8b.gin ...
set -euo pipefail
tpu=$1; zone=$2; model_dir=$3; steps=$4; shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "
  cd ~/flan-ul2r && FLAN_UL2R_MULTIHOST=1 flan-ul2r train --gin_file=gin/runs/ul2r.gin \
    --gin_file=gin/partitioning/fsdp.gin --gin.MODEL_DIR='$model_dir' --gin.TRAIN_STEPS=$steps $*"
