# Sourced by the configs/*.sh recipes. Needs THREADS.
# A run of hours imports the package when it starts and some modules at its first evaluation:
# run it from a snapshot of the source that nobody edits meanwhile, e.g.
#   git worktree add --detach ../train-code HEAD && PYTHONPATH=../train-code/src configs/...
# train_or_resume DATA OUT STEPS [OPTIONS...]: a fresh run with OPTIONS, or resume OUT to STEPS
# (a resume keeps the run's own options: only the step count may change).
train_or_resume() {
  local data=$1 out=$2 steps=$3
  shift 3
  if [ -d "$out/last" ]; then
    tunesmith train "$data" --out "$out" --resume --max-steps "$steps" --threads "$THREADS"
  else
    tunesmith train "$data" --out "$out" --max-steps "$steps" --threads "$THREADS" "$@"
  fi
}
