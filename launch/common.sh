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
