#!/usr/bin/env bash
# Smoke run on this machine's CPU: tiny model, default UL2R mixture (stdlib-docs corpus), no downloads.
#   launch/local_cpu.sh [--dry_run] [MODEL_DIR] [TRAIN_STEPS] [extra flan-ul2r train flags...]
# Defaults: /tmp/flan_ul2r_smoke, 50 steps. Running it again resumes (or says the run is finished).
# Exit 75: stopped by Ctrl-C / SIGTERM after saving a checkpoint; run it again to resume.
set -euo pipefail

dry_run=0
if [[ ${1:-} == --dry_run ]]; then dry_run=1; shift; fi
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
model_dir=${1:-/tmp/flan_ul2r_smoke}; steps=${2:-50}; shift $(( $# > 2 ? 2 : $# ))

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=launch/common.sh
. "$repo/launch/common.sh"
cd "$repo"
run flan-ul2r train --gin_file=gin/runs/ul2r.gin --gin_file=gin/models/tiny.gin \
  --gin_file=gin/runs/cpu_smoke.gin "--gin.MODEL_DIR=$model_dir" "--gin.TRAIN_STEPS=$steps" "$@"
