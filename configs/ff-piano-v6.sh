#!/usr/bin/env bash
# Bundled-model candidate v6: v5's pretraining continued for 2,000 more steps on the same mix
# (re-warmed to 2e-4, cosine decay, seed 4), then v4's fine-tune. Several hours: it spans
# working sessions by resuming (run the script again; a finished stage is a no-op).
#   1. configs/ff-piano-v5.sh (no-op once done): RUNS/v5-pretrain, RUNS/v5-finetune.
#   2. RUNS/v6-pretrain from v5-pretrain/last; 3. RUNS/v6-finetune from v6-pretrain/last.
# Usage: configs/ff-piano-v6.sh [DATASETS_DIR] [RUNS_DIR]. Keep RUNS outside the repository and
# run from a snapshot of the source (see train_or_resume.sh). On a machine without RUNS, start
# stage 2 from the bundled model instead (--init-from src/tunesmith/pretrained/ff-piano).
set -euo pipefail
DATASETS=${1:-../shared/datasets}
RUNS=${2:-../runs}
THREADS=${THREADS:-2}
source "$(dirname "$0")/train_or_resume.sh"

"$(dirname "$0")/ff-piano-v5.sh" "$DATASETS" "$RUNS"
pretrain_then_finetune "$RUNS" "$RUNS/v5-pretrain/last" v6 2000 4
# The bundled model: python scripts/bundle_model.py "$RUNS/v6-finetune/best"
