#!/usr/bin/env bash
# Bundled model v4: v3's pretraining, 400 more pretraining steps, then v3's fine-tune.
# See ff-piano-v4.md for what each stage measured.
#   1. configs/ff-piano-v3.sh stages 1-2: RUNS/v3-pretrain (POP909 + FF train, bar positions,
#      half of the windows in fill-in-the-middle form; 2,100 steps in all).
#   2. RUNS/v4-pretrain: from v3-pretrain/last on the same mix (its token cache), the cosine
#      re-warmed to 2e-4 (30 steps) and decayed over 400 steps, seed 2.
#   3. RUNS/v4-finetune: from v4-pretrain/last, 150 steps on final-fantasy-piano, as v3's.
# Usage: configs/ff-piano-v4.sh [DATASETS_DIR] [RUNS_DIR]   (V4_FINETUNE=0: stages 1-2 only)
# Every stage resumes where it stopped (a finished stage is a no-op). Keep RUNS outside the
# repository, and run from a snapshot of the source (see train_or_resume.sh).
set -euo pipefail
DATASETS=${1:-../shared/datasets}
RUNS=${2:-../runs}
THREADS=${THREADS:-2}
source "$(dirname "$0")/train_or_resume.sh"

V3_FINETUNE=0 "$(dirname "$0")/ff-piano-v3.sh" "$DATASETS" "$RUNS"

train_or_resume "$RUNS/v2-pretrain/cache" "$RUNS/v4-pretrain" 400 \
  --init-from "$RUNS/v3-pretrain/last" --seq-len 1024 --batch-size 16 \
  --lr 2e-4 --warmup-steps 30 --decay-steps 400 --augment-transpose 5 --eval-every 100 \
  --eval-batches 8 --log-every 10 --seed 2 --precision fp32 --fim-rate 0.5

[ "${V4_FINETUNE:-1}" = 1 ] || exit 0  # configs/ff-piano-v5.sh stops here
train_or_resume "$DATASETS/final-fantasy-piano" "$RUNS/v4-finetune" 150 \
  --init-from "$RUNS/v4-pretrain/last" --seq-len 1024 --batch-size 16 --lr 3e-4 \
  --warmup-steps 30 --decay-steps 150 --augment-transpose 5 --eval-every 50 \
  --log-every 10 --seed 0 --precision fp32 --fim-rate 0.5

# The bundled model: python scripts/bundle_model.py "$RUNS/v4-finetune/best"
