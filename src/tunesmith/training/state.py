"""Run folders: what may be written where, RNG states, and the resumable training state."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.data.cache import is_cache_dir
from tunesmith.errors import BadCheckpointError, TunesmithError
from tunesmith.model.checkpoint import STATE_FILE, read_config
from tunesmith.model.config import ModelConfig
from tunesmith.training.config import TrainConfig

LAST, BEST, SAMPLES = "last", "best", "samples"


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
    if entries == ["cache"] and is_cache_dir(run_dir / "cache"):
        return
    if entries:
        hint = " (add --resume to continue it)" if (run_dir / LAST).is_dir() else ""
        raise TunesmithError(f"--out {run_dir}: folder is not empty{hint}; choose a new folder")


def saved_run(run_dir: Path) -> tuple[dict[str, Any], TrainConfig]:
    """The ``config.json`` of ``run_dir/last`` and its TrainConfig, for --resume."""
    last = run_dir / LAST
    if not (last / STATE_FILE).is_file():
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
