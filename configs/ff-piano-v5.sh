#!/usr/bin/env bash
# Bundled-model candidate v5 (trained, not bundled: configs/ff-piano-v5.md): v4's pretraining,
# 1,200 more pretraining steps, then v4's fine-tune. Several hours: it spans sessions by resuming.
#   1. configs/ff-piano-v4.sh stages 1-2: RUNS/v4-pretrain (2,500 steps in all).
#   2. RUNS/v5-pretrain: from v4-pretrain/last on the same mix (its token cache), the cosine
#      re-warmed to 2e-4 (30 steps) and decayed over 1,200 steps, seed 3, the precision
#      measured at its start (--precision auto).
#   3. RUNS/v5-finetune: from v5-pretrain/last, 150 steps on final-fantasy-piano, as v4's.
# Usage: configs/ff-piano-v5.sh [DATASETS_DIR] [RUNS_DIR]
# Every stage resumes where it stopped (a finished stage is a no-op). Keep RUNS outside the
# repository, and run from a snapshot of the source (see train_or_resume.sh). On a machine
# without RUNS, start stage 2 from the bundled model (--init-from src/tunesmith/pretrained/ff-piano,
# v4's result, fine-tuned: not the same start).
set -euo pipefail
DATASETS=${1:-../shared/datasets}
RUNS=${2:-../runs}
THREADS=${THREADS:-2}
source "$(dirname "$0")/train_or_resume.sh"

V4_FINETUNE=0 "$(dirname "$0")/ff-piano-v4.sh" "$DATASETS" "$RUNS"

pretrain_then_finetune "$RUNS" "$RUNS/v4-pretrain/last" v5 1200 3

# The bundled model: python scripts/bundle_model.py "$RUNS/v5-finetune/best"
