#!/usr/bin/env bash
# Bundled model v2: pretrain on POP909 + the Final Fantasy train split, then fine-tune on the
# Final Fantasy train split alone. See ff-piano-v2.md for what each stage measured.
#   1. RUNS/v2-pretrain-data: a folder of symlinks, all 909 POP909 files and the 81 files of
#      final-fantasy-piano's train split (its val and test files stay out of every stage).
#   2. RUNS/v2-pretrain: the `default` preset, context 1024, steps of 16 x 1024 on a cosine over
#      PRETRAIN_STEPS, stopped at PRETRAIN_STOP (the bundled model stopped at 1,100 of 1,300).
#   3. RUNS/v2-finetune: from v2-pretrain/last, FINETUNE_STEPS steps on final-fantasy-piano,
#      half of its windows in fill-in-the-middle form (--fim-rate 0.5) to teach infilling.
# Usage: configs/ff-piano-v2.sh [DATASETS_DIR] [RUNS_DIR]   (V2_FINETUNE=0: stages 1-2 only)
# Every stage resumes where it stopped (a finished stage is a no-op), so the script can be
# rerun after a kill or on the next day. Keep RUNS outside the repository.
set -euo pipefail
DATASETS=${1:-../shared/datasets}
RUNS=${2:-../runs}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1300}
PRETRAIN_STOP=${PRETRAIN_STOP:-1100}
FINETUNE_STEPS=${FINETUNE_STEPS:-150}
THREADS=${THREADS:-2}
FF="$DATASETS/final-fantasy-piano"
MIX="$RUNS/v2-pretrain-data"

source "$(dirname "$0")/train_or_resume.sh"
pretrain_mix "$DATASETS" "$MIX"

train_or_resume "$MIX" "$RUNS/v2-pretrain" "$PRETRAIN_STOP" \
  --preset default --seq-len 1024 --batch-size 16 --lr 6e-4 --warmup-steps 100 \
  --decay-steps "$PRETRAIN_STEPS" --augment-transpose 5 --eval-every 100 --eval-batches 8 \
  --log-every 10 --seed 0 --precision fp32

[ "${V2_FINETUNE:-1}" = 1 ] || exit 0  # configs/ff-piano-v3.sh stops here
train_or_resume "$FF" "$RUNS/v2-finetune" "$FINETUNE_STEPS" \
  --init-from "$RUNS/v2-pretrain/last" --seq-len 1024 --batch-size 16 --lr 3e-4 \
  --warmup-steps 30 --decay-steps "$FINETUNE_STEPS" --augment-transpose 5 --eval-every 50 \
  --log-every 10 --seed 0 --precision fp32 --fim-rate 0.5

# The bundled model: python scripts/bundle_model.py "$RUNS/v2-finetune/best"
