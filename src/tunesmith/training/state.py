"""Run folders: what may be written where, RNG states, and the resumable training state."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tunesmith.data.cache import is_cache_dir
from tunesmith.errors import BadCheckpointError, TunesmithError
from tunesmith.model.checkpoint import (
    STATE_FILE,
    interrupted_swap,
    load_weights,
    read_config,
    recover_folder,
)
from tunesmith.model.config import ModelConfig
from tunesmith.training.config import TrainConfig
from tunesmith.training.data import CACHE_SUBDIR
from tunesmith.training.metrics import METRICS_FILE, truncate_metrics

if TYPE_CHECKING:
    from tunesmith.model.transformer import Transformer

LAST, BEST, SAMPLES = "last", "best", "samples"
# The TrainConfig a run was started with, written before its first step: --resume
# of a run killed before its first checkpoint starts afresh with it.
RUN_CONFIG = "train_config.json"
# Everything a run may have written before its first checkpoint of last/ was whole
# (best/ is written just before last/).
_BEFORE_FIRST_CHECKPOINT = frozenset(
    {CACHE_SUBDIR, METRICS_FILE, RUN_CONFIG, BEST, SAMPLES, "tensorboard", "wandb", "wandb_id.txt"}
)


def rng_state() -> dict[str, Any]:
    """Every global RNG that training touches (dropout uses torch's)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_fresh_run_dir(run_dir: Path) -> None:
    """A new run never writes into a folder that holds anything.

    The one exception is a folder holding only the token cache a failed start
    prepared (``cache/``): it is reused rather than tokenized again.
    """
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise TunesmithError(f"--out {run_dir}: exists and is not a folder")
    entries = [p.name for p in run_dir.iterdir()]
    if entries == [CACHE_SUBDIR] and is_cache_dir(run_dir / CACHE_SUBDIR):
        return
    if entries:
        started = any((run_dir / name).exists() for name in (LAST, RUN_CONFIG, METRICS_FILE))
        hint = " (add --resume to continue it)" if started else ""
        raise TunesmithError(f"--out {run_dir}: folder is not empty{hint}; choose a new folder")


def _is_leftover(name: str) -> bool:
    """A temporary of an atomic write (checkpoint, cache, config, metrics) that a kill left."""
    folders = [f".{n}.{k}-" for n in (LAST, BEST, CACHE_SUBDIR) for k in ("tmp", "old")]
    files = [f".{RUN_CONFIG}.tmp-", Path(METRICS_FILE).with_suffix(".tmp").name]
    return any(name.startswith(prefix) for prefix in folders + files)


def recover_run_dir(run_dir: Path) -> None:
    """Repair a run folder after a kill mid-write (rank 0 only, before anything reads it).

    An interrupted swap of ``last/`` or ``best/`` is rolled back, and every
    temporary of an atomic write (checkpoints, token cache, config) is removed.
    """
    if not run_dir.is_dir():
        return
    for name in (BEST, LAST):
        recover_folder(run_dir / name)
    for leftover in [p for p in run_dir.iterdir() if _is_leftover(p.name)]:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def resumable_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint --resume continues from; ``None`` before the first one.

    That is ``last/``, or, if a kill came between the two renames of its
    swap, the previous ``last/`` set aside (which :func:`recover_run_dir` puts back).
    """
    last = run_dir / LAST
    for folder in (last, interrupted_swap(last)):
        if folder is not None and (folder / STATE_FILE).is_file():
            return folder
    return None


def check_restartable(run_dir: Path) -> None:
    """A run folder without a checkpoint may start afresh under --resume.

    Only if it holds nothing but what a run writes before its first checkpoint;
    anything else (or no folder at all) is refused.
    """
    names = set()
    if run_dir.is_dir():
        names = {p.name for p in run_dir.iterdir() if not _is_leftover(p.name)}
    if not run_dir.is_dir() or not names <= _BEFORE_FIRST_CHECKPOINT:
        raise TunesmithError(f"--resume: {run_dir} holds no resumable run (no {LAST}/{STATE_FILE})")


def start_afresh(run_dir: Path) -> None:
    """Clear what a run killed before its first checkpoint logged and saved (rank 0)."""
    truncate_metrics(run_dir, 0)
    for name in (BEST, SAMPLES):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def write_run_config(run_dir: Path, cfg: TrainConfig) -> None:
    """Record the run's TrainConfig before its first step (atomically: a kill leaves the old one)."""
    tmp = run_dir / f".{RUN_CONFIG}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"train": cfg.to_dict()}, indent=2))
    os.replace(tmp, run_dir / RUN_CONFIG)


def saved_train_config(run_dir: Path) -> TrainConfig | None:
    """The TrainConfig --resume continues: the checkpoint's, else the one the run started with.

    ``None`` for a run killed before its first checkpoint that recorded no config
    (a folder from an older version): it starts afresh with the options given.
    """
    if resumable_checkpoint(run_dir) is not None:
        return saved_run(run_dir)[1]
    check_restartable(run_dir)
    path = run_dir / RUN_CONFIG
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_dict(json.loads(path.read_text())["train"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise TunesmithError(f"--resume: {path}: unreadable ({err})") from None


def saved_run(run_dir: Path) -> tuple[dict[str, Any], TrainConfig]:
    """The ``config.json`` of the checkpoint to resume and its TrainConfig."""
    last = resumable_checkpoint(run_dir)
    if last is None:
        raise TunesmithError(f"--resume: {run_dir} holds no resumable run (no {LAST}/{STATE_FILE})")
    try:
        config = read_config(last)
        train = TrainConfig.from_dict(config["train"])
    except (KeyError, TypeError) as err:
        raise BadCheckpointError(f"--resume: {last}: incomplete config.json ({err})") from None
    return config, train


def check_resume_compatible(
    saved: dict[str, Any],
    saved_train: TrainConfig,
    train: TrainConfig,
    model: ModelConfig,
    data: dict[str, Any],
) -> None:
    """Refuse to continue a run under another config, in one line naming the differences."""
    diffs = train.differences(saved_train)
    if ModelConfig.from_dict(saved["model"]) != model:
        diffs.append("model config")
    if saved.get("data", {}).get("fingerprint") != data.get("fingerprint"):
        diffs.append("training data")
    if diffs:
        raise TunesmithError(
            "--resume: the run folder holds a different config ("
            + "; ".join(diffs)
            + "); use a new --out"
        )


def load_train_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / LAST / STATE_FILE
    try:
        # Our own file, written by torch.save: RNG states are numpy/python objects.
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise BadCheckpointError(f"--resume: {path}: unreadable training state ({err})") from None


def restore_training(
    run_dir: Path,
    model: Transformer,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> dict[str, Any]:
    """Load ``last/``'s weights into ``model`` and its optimizer and scheduler states; returns
    the rest of the training state (counters, RNG streams, the log's open interval)."""
    state = load_train_state(run_dir)
    load_weights(model, run_dir / LAST)
    optimizer.load_state_dict(state["optimizer"])
    sched = dict(state["scheduler"])
    # None keeps this run's schedule objects: a resume may extend the horizon.
    sched["lr_lambdas"] = [None] * len(scheduler.lr_lambdas)
    scheduler.load_state_dict(sched)
    for group, base_lr, fn in zip(
        optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
    ):
        group["lr"] = base_lr * fn(scheduler.last_epoch)
    return state
