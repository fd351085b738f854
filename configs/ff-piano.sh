#!/usr/bin/env bash
# Reproduces the bundled model on the Final Fantasy piano corpus (train split):
#   1. the `seed` and `default` presets, 200 steps each (16 x 512 tokens a step,
#      1.64M training tokens), on the same cosine schedule (horizon 1600 steps);
#   2. the one with the lower validation loss at step 200 resumed to FINAL_STEPS,
#      its cosine horizon shortened to FINAL_STEPS so that it anneals in the time
#      we had (a resume may change max_steps and decay_steps, nothing else).
# Usage: configs/ff-piano.sh [DATA_DIR] [RUNS_DIR]
# Rerunning the script continues where it stopped (finished stages are no-ops).
set -euo pipefail
DATA=${1:-/work/shared/datasets/final-fantasy-piano}
RUNS=${2:-runs}
COMPARE_STEPS=${COMPARE_STEPS:-200}
COMPARE_HORIZON=${COMPARE_HORIZON:-1600}
FINAL_STEPS=${FINAL_STEPS:-800}
COMMON=(--seq-len 512 --batch-size 16 --lr 6e-4 --warmup-steps 100 --decay-steps "$COMPARE_HORIZON"
        --augment-transpose 5 --eval-every 50 --log-every 10 --seed 0 --threads 2)

stage() {  # stage PRESET STEPS [EXTRA...]: train (or resume) RUNS/ff-PRESET up to STEPS
  local preset=$1 steps=$2 out="$RUNS/ff-$1"
  shift 2
  if [ -d "$out/last" ]; then
    tunesmith train "$DATA" --out "$out" --resume --max-steps "$steps" --threads 2 "$@"
  else
    tunesmith train "$DATA" --out "$out" --preset "$preset" --max-steps "$steps" "${COMMON[@]}" "$@"
  fi
}

stage seed "$COMPARE_STEPS"
stage default "$COMPARE_STEPS"
# The winner: the lower validation loss after the same number of training tokens.
WINNER=$(python - "$RUNS" "$COMPARE_STEPS" <<'PY'
import json, sys
runs, steps = sys.argv[1], int(sys.argv[2])
def val_at(preset):
    rows = [json.loads(l) for l in open(f"{runs}/ff-{preset}/metrics.jsonl") if l.strip()]
    return [r["loss"] for r in rows if r.get("split") == "val" and r["step"] == steps][-1]
scores = {p: val_at(p) for p in ("seed", "default")}
print(min(scores, key=scores.get))
print(f"val loss at step {steps}: {scores}", file=sys.stderr)
PY
)
echo "winner: $WINNER"
stage "$WINNER" "$FINAL_STEPS" --decay-steps "$FINAL_STEPS"
