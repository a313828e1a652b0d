#!/usr/bin/env bash
# Run on a Cloud TPU VM slice (one or many hosts): create the slice or reuse it, install this checkout on
# every worker, copy the gin files, start `flan-ul2r VERB` on all workers and stream worker 0's log.
# Exits with worker 0's status: 0 done, 75 preempted (a checkpoint was saved: run the same command again).
#
#   launch/tpu_pod.sh --tpu my-v4 --zone us-central2-b --accelerator_type v4-32 \
#       --model_dir gs://my-bucket/runs/u-llama [--verb train|pipeline|eval] [--train_steps 20000] \
#       [--project P] [--runtime tpu-ubuntu2204-base] [--spot] [--run_gin gin/runs/ul2r.gin] \
#       [--dry_run] [-- --gin_file=gin/models/llama_1b.gin --gin.BATCH_SIZE=64 ...]
#
# --verb train (default) needs --train_steps; pipeline: `--verb pipeline -- --gin_file=gin/pipelines/...`.
# MODEL_DIR must be shared storage (gs://...): every worker writes its shards of each checkpoint there.
# --dry_run prints every command and runs none (no gcloud, no ssh).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

tpu="" zone="" accelerator_type="" model_dir="" train_steps="" project="" spot=0 dry_run=0
runtime="tpu-ubuntu2204-base" run_gin="" verb=train
while (( $# )); do
  case $1 in
    --tpu) tpu=$2; shift 2 ;;
    --zone) zone=$2; shift 2 ;;
    --accelerator_type) accelerator_type=$2; shift 2 ;;
    --model_dir) model_dir=$2; shift 2 ;;
    --train_steps) train_steps=$2; shift 2 ;;
    --project) project=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --run_gin) run_gin=$2; shift 2 ;;
    --verb) verb=$2; shift 2 ;;
    --spot) spot=1; shift ;;
    --dry_run) dry_run=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "tpu_pod.sh: unknown argument $1 (flan-ul2r flags go after --)" >&2; usage 2 ;;
  esac
done
for required in tpu zone accelerator_type; do
  if [[ -z ${!required} ]]; then echo "tpu_pod.sh: --$required is required" >&2; usage 2; fi
done
if [[ -n $model_dir && $model_dir != gs://* ]]; then
  echo "tpu_pod.sh: --model_dir=$model_dir must be gs://... (every worker writes there)" >&2; exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=launch/common.sh
. "$repo/launch/common.sh"
check_verb tpu_pod.sh
gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone "$zone")
if [[ -n $project ]]; then where+=(--project "$project"); fi
# shellcheck disable=SC2088  # expanded by the workers' shell, not here
log="~/flan_ul2r_$verb.log" status="~/flan_ul2r_$verb.status"

# 1. The slice: reuse a READY one, recreate a preempted one, else create it.
if (( dry_run )); then
  run "${gcloud_tpu[@]}" describe "$tpu" "${where[@]}" --format='value(state)'
  echo "# (dry run: assuming the slice does not exist yet)"
  state=""
else
  state=$("${gcloud_tpu[@]}" describe "$tpu" "${where[@]}" --format='value(state)' 2>/dev/null || true)
fi
create=("${gcloud_tpu[@]}" create "$tpu" "${where[@]}" --accelerator-type "$accelerator_type"
        --version "$runtime")
if (( spot )); then create+=(--spot); fi
case $state in
  READY) echo "reusing TPU VM slice $tpu ($accelerator_type)" ;;
  "") run "${create[@]}" ;;
  PREEMPTED|TERMINATED)
    run "${gcloud_tpu[@]}" delete "$tpu" "${where[@]}" --quiet
    run "${create[@]}" ;;
  *) echo "tpu_pod.sh: slice $tpu is $state; wait until it is READY and run this again" >&2; exit 1 ;;
esac

# 2. This checkout (tracked files, with local edits) on every worker, installed with JAX for TPU.
tarball=$(mktemp -u /tmp/flan_ul2r_src.XXXXXX).tgz
echo "+ git -C $repo ls-files -z | tar -C $repo --null -T - -czf $tarball"
if (( ! dry_run )); then git -C "$repo" ls-files -z | tar -C "$repo" --null -T - -czf "$tarball"; fi
run "${gcloud_tpu[@]}" scp "$tarball" "$tpu:flan_ul2r_src.tgz" "${where[@]}" --worker=all
run rm -f "$tarball"
run "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" --worker=all --command \
  "rm -rf ~/flan-ul2r && mkdir -p ~/flan-ul2r/launch_gin && tar -xzf ~/flan_ul2r_src.tgz -C ~/flan-ul2r \
&& python3 -m pip install -q -e ~/flan-ul2r 'jax[tpu]'"

# 3. The gin files (the run gin and every --gin_file=F given after --), copied to launch_gin/ on all
#    workers; `include`s inside them resolve against the installed gin/ folder.
train_args=()
gin_files=()
if [[ -n $run_gin ]]; then gin_files+=("$run_gin"); fi
for arg in "$@"; do
  if [[ $arg == --gin_file=* ]]; then gin_files+=("${arg#--gin_file=}"); else train_args+=("$arg"); fi
done
gin_flags=()
for i in "${!gin_files[@]}"; do
  file=${gin_files[$i]}
  for dir in "$repo" "$repo/flan_ul2r" "$repo/flan_ul2r/gin"; do  # the gin files installed with the package
    if [[ ! -f $file && -f $dir/$file ]]; then file=$dir/$file; fi
  done
  if [[ ! -f $file ]]; then echo "tpu_pod.sh: gin file ${gin_files[$i]} not found" >&2; exit 2; fi
  name="$i-$(basename "$file")"
  run "${gcloud_tpu[@]}" scp "$file" "$tpu:flan-ul2r/launch_gin/$name" "${where[@]}" --worker=all
  gin_flags+=("--gin_file=launch_gin/$name")
done

# 4. Start on all workers (detached: a dropped ssh does not stop training), then follow worker 0.
train=(python3 -m flan_ul2r.cli "$verb" "${gin_flags[@]}" "${verb_flags[@]}" "${train_args[@]}")
printf -v train_cmd ' %q' "${train[@]}"
run "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" --worker=all --command \
  "cd ~/flan-ul2r && rm -f $status && (FLAN_UL2R_MULTIHOST=1 nohup$train_cmd > $log 2>&1; echo \$? > $status) \
> /dev/null 2>&1 < /dev/null &"
if [[ -n $model_dir ]]; then echo "# TensorBoard: tensorboard --logdir $model_dir"; fi
run "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" --worker=0 --command \
  "tail -n +1 -F $log & while [ ! -s $status ]; do sleep 5; done; sleep 2; kill \$!; exit \$(cat $status)"
