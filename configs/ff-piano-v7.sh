#!/usr/bin/env bash
# Bundled-model candidate v7: the bundled model (v4) pretrained 1,200 more steps on the mix, then
# v4's fine-tune; sized to finish within one working session on a fresh machine, where the runs
# of v2-v6 are gone (configs/ff-piano-v7.md).
#   1. RUNS/v2-pretrain-data: the pretraining mix (POP909 + the Final Fantasy train split).
#   2. RUNS/v7-pretrain: from src/tunesmith/pretrained/ff-piano (v4), 1,200 steps, seed 5.
#   3. RUNS/v7-finetune: from v7-pretrain/last, 150 steps on final-fantasy-piano (lr 3e-4).
#   4. RUNS/v7b-finetune: the same at half the learning rate (1.5e-4).
# Every stage measures the faster precision at its start (--precision auto).
# Usage: configs/ff-piano-v7.sh [DATASETS_DIR] [RUNS_DIR]. Keep RUNS outside the repository and
# run from a snapshot of the source (see train_or_resume.sh); a finished stage is a no-op.
set -euo pipefail
DATASETS=${1:-../shared/datasets}
RUNS=${2:-../runs}
THREADS=${THREADS:-2}
source "$(dirname "$0")/train_or_resume.sh"

pretrain_mix "$DATASETS" "$RUNS/v2-pretrain-data"
export FINETUNE_PRECISION=auto
pretrain_then_finetune "$RUNS" \
  "$(dirname "$0")/../src/tunesmith/pretrained/ff-piano" v7 1200 5 "$RUNS/v2-pretrain-data"
finetune "$RUNS/v7b-finetune" "$RUNS/v7-pretrain/last" 1.5e-4
# The bundled model: python scripts/bundle_model.py "$RUNS/v7b-finetune/best"
