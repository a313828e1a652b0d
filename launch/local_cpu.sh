#!/usr/bin/env bash
# Smoke run on this machine's CPU: tiny model, default UL2R mixture (stdlib-docs corpus), no downloads.
#   launch/local_cpu.sh /tmp/flan_ul2r_smoke 50 [extra --gin.X=... flags]
set -euo pipefail
model_dir=${1:-/tmp/flan_ul2r_smoke}; steps=${2:-50}; shift $(( $# > 2 ? 2 : $# ))
exec flan-ul2r train --gin_file=gin/runs/ul2r.gin --gin_file=gin/models/tiny.gin --gin_file=gin/runs/cpu_smoke.gin \
  --gin.MODEL_DIR="$model_dir" --gin.TRAIN_STEPS="$steps" "$@"
