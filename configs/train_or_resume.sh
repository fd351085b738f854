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

# pretrain_mix DATASETS MIX: MIX becomes a folder of symlinks, all 909 POP909 files and the 81
# files of final-fantasy-piano's train split (its val and test files stay out of every stage).
pretrain_mix() {
  python - "$1" "$2" <<'PY'
import sys
from pathlib import Path

from tunesmith.data.prepare import find_midi_files
from tunesmith.data.split import assign_splits


def link(target: Path, name: Path) -> None:
    if not name.is_symlink():
        name.parent.mkdir(parents=True, exist_ok=True)
        name.symlink_to(target)


datasets, mix = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
ff = datasets / "final-fantasy-piano"
for rel, split in assign_splits(find_midi_files(ff)).items():
    if split == "train":
        link(ff / rel, mix / "ff-train" / rel)
for rel in find_midi_files(datasets / "pop909"):
    link(datasets / "pop909" / rel, mix / "pop909" / rel)
PY
}

# pretrain_then_finetune RUNS FROM NAME STEPS SEED [MIX]: RUNS/NAME-pretrain, STEPS more steps
# from FROM on the pretraining mix (MIX, by default RUNS/v2-pretrain/cache: POP909 + the Final
# Fantasy train split; v5's options), then `finetune` into RUNS/NAME-finetune.
# Needs DATASETS and THREADS.
pretrain_then_finetune() {
  local runs=$1 from=$2 name=$3 steps=$4 seed=$5 mix=${6:-$1/v2-pretrain/cache}
  train_or_resume "$mix" "$runs/$name-pretrain" "$steps" \
    --init-from "$from" --seq-len 1024 --batch-size 16 \
    --lr 2e-4 --warmup-steps 30 --decay-steps "$steps" --augment-transpose 5 --eval-every 100 \
    --eval-batches 8 --log-every 10 --seed "$seed" --precision auto --fim-rate 0.5
  echo PRETRAIN-DONE
  finetune "$runs/$name-finetune" "$runs/$name-pretrain/last"
}

# finetune OUT FROM [LR]: OUT, 150 steps from FROM on final-fantasy-piano (v4's fine-tune: peak
# learning rate LR, default 3e-4; precision FINETUNE_PRECISION, default fp32).
finetune() {
  train_or_resume "$DATASETS/final-fantasy-piano" "$1" 150 \
    --init-from "$2" --seq-len 1024 --batch-size 16 --lr "${3:-3e-4}" \
    --warmup-steps 30 --decay-steps 150 --augment-transpose 5 --eval-every 50 \
    --log-every 10 --seed 0 --precision "${FINETUNE_PRECISION:-fp32}" --fim-rate 0.5
  echo FINETUNE-DONE
}
