#!/usr/bin/env bash
# Bundled model v3: v2's pretraining, then more pretraining with the bar-position embedding,
# then v2's fine-tune. See ff-piano-v3.md for what each stage measured.
#   1. configs/ff-piano-v2.sh stages 1-2: RUNS/v2-pretrain (POP909 + FF train, 1,100 steps).
#   2. RUNS/v3-pretrain: from v2-pretrain/last with --bar-positions (an embedding of each
#      token's position in the 4/4 bar, starting at zero), half of the windows in
#      fill-in-the-middle form, the same mix (its token cache), cosine 3e-4 over 1,000 steps.
#   3. RUNS/v3-finetune: from v3-pretrain/last, 150 steps on final-fantasy-piano, as v2's.
# Usage: configs/ff-piano-v3.sh [DATASETS_DIR] [RUNS_DIR]   (V3_FINETUNE=0: stages 1-2 only)
# Every stage resumes where it stopped (a finished stage is a no-op). Keep RUNS outside the
# repository. On a machine without RUNS, a shorter path: --init-from the bundled model
# (src/tunesmith/pretrained/ff-piano), which is this recipe's result.
set -euo pipefail
DATASETS=${1:-../shared/datasets}
RUNS=${2:-../runs}
THREADS=${THREADS:-2}
source "$(dirname "$0")/train_or_resume.sh"

V2_FINETUNE=0 "$(dirname "$0")/ff-piano-v2.sh" "$DATASETS" "$RUNS"

train_or_resume "$RUNS/v2-pretrain/cache" "$RUNS/v3-pretrain" 1000 \
  --init-from "$RUNS/v2-pretrain/last" --bar-positions --seq-len 1024 --batch-size 16 \
  --lr 3e-4 --warmup-steps 50 --decay-steps 1000 --augment-transpose 5 --eval-every 100 \
  --eval-batches 8 --log-every 10 --seed 1 --precision fp32 --fim-rate 0.5

[ "${V3_FINETUNE:-1}" = 1 ] || exit 0  # configs/ff-piano-v4.sh stops here
train_or_resume "$DATASETS/final-fantasy-piano" "$RUNS/v3-finetune" 150 \
  --init-from "$RUNS/v3-pretrain/last" --seq-len 1024 --batch-size 16 --lr 3e-4 \
  --warmup-steps 30 --decay-steps 150 --augment-transpose 5 --eval-every 50 \
  --log-every 10 --seed 0 --precision fp32 --fim-rate 0.5

# The bundled model: python scripts/bundle_model.py "$RUNS/v3-finetune/best"
