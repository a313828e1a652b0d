# Shared by the launchers (sourced): `run CMD...` prints a command in shell syntax and runs it unless
# dry_run=1; `quote ARG` prints one argument the way it must be typed.
# shellcheck shell=bash

dry_run=${dry_run:-0}

quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    local q="'\\''"
    printf "'%s'" "${1//\'/$q}"
  fi
}

run() {
  local arg
  printf '+'
  for arg in "$@"; do printf ' '; quote "$arg"; done
  printf '\n'
  if (( ! dry_run )); then "$@"; fi
}

# `check_verb SCRIPT`: the verb a launcher starts (--verb, `train` by default) and what it needs. train:
# --model_dir, --train_steps and a run gin (gin/runs/ul2r.gin unless --run_gin); pipeline: --model_dir,
# its gin files after -- (or --run_gin), no --train_steps (each stage sets its own); eval: its gin files
# and --gin.CHECKPOINT_PATH after --. Sets run_gin's default; `verb_flags` then holds the verb's flags.
check_verb() {
  verb=${verb:-train}
  case $verb in
    train) run_gin=${run_gin:-gin/runs/ul2r.gin}
      if [[ -z $model_dir || -z $train_steps ]]; then
        echo "$1: --verb train needs --model_dir and --train_steps" >&2; exit 2
      fi ;;
    pipeline) if [[ -z $model_dir ]]; then echo "$1: --verb pipeline needs --model_dir" >&2; exit 2; fi ;&
    eval) if [[ -n $train_steps ]]; then
        echo "$1: --train_steps is for --verb train (a pipeline's stages set their own steps)" >&2; exit 2
      fi ;;
    *) echo "$1: --verb $verb: train, pipeline or eval" >&2; exit 2 ;;
  esac
  if [[ $verb == eval && -n $model_dir ]]; then  # eval.gin has no MODEL_DIR: flan-ul2r would refuse it
    echo "$1: --model_dir is for --verb train and pipeline; eval reads --gin.CHECKPOINT_PATH (and" \
      "--gin.EVAL_OUTPUT_DIR) after --" >&2; exit 2
  fi
  verb_flags=()
  if [[ -n $model_dir ]]; then verb_flags+=("--gin.MODEL_DIR=$model_dir"); fi
  if [[ -n $train_steps ]]; then verb_flags+=("--gin.TRAIN_STEPS=$train_steps"); fi
}
