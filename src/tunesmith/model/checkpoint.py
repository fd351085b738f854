"""Checkpoint folders: ``config.json``, ``model.safetensors``, ``tokenizer.json``.

``config.json`` holds ``{"format": "tunesmith-checkpoint", "version": 1,
"model": ModelConfig, "tokenizer": {...}, "train": {...} | null, "data": {...} | null}``.
A training run adds ``train_state.pt`` (optimizer, scheduler, RNG, step) beside
them. Folders are written under a temporary name and renamed into place, so a
kill at any moment leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tunesmith.errors import BadCheckpointError
from tunesmith.model.checkpoint_info import (
    CONFIG_FILE,
    FORMAT,
    STATE_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    bundled_model_path,
    file_checksum,
    read_config,
    read_model_info,
)
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization import Tokenizer

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "STATE_FILE",
    "TOKENIZER_FILE",
    "WEIGHTS_FILE",
    "Checkpoint",
    "bundled_model_path",
    "check_finite_weights",
    "file_checksum",
    "load_checkpoint",
    "read_config",
    "save_checkpoint",
]


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode), its tokenizer and configs."""

    model: Transformer
    tokenizer: Tokenizer
    config: dict[str, Any]
    path: Path

    @property
    def checksum(self) -> str:
        """A short sha256 of the weights file, for reproducibility records."""
        return file_checksum(self.path / WEIGHTS_FILE)


def check_finite_weights(model: Transformer, where: str) -> None:
    """Refuse a model with a NaN or infinite weight: it would write silence or noise."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BadCheckpointError(f"{where}: weight {name} is not finite (NaN or inf)")


def _state_dict_for_saving(
    model: Transformer, dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    sd = {}
    seen: set[int] = set()
    for name, t in model.state_dict().items():
        if t.data_ptr() in seen:  # tied weights are stored once
            continue
        seen.add(t.data_ptr())
        t = t.detach().cpu()
        sd[name] = (t.to(dtype) if dtype is not None and t.is_floating_point() else t).contiguous()
    return sd


def write_folder_atomically(dest: Path, write: Any) -> Path:
    """Call ``write(tmp_dir)`` then move ``tmp_dir`` to ``dest``, replacing it whole."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        write(tmp)
        # mkdtemp makes a private folder; a checkpoint is an ordinary readable one.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def leftover_folders(dest: Path, kind: str) -> list[Path]:
    """The ``.{dest.name}.{kind}-*`` siblings of ``dest`` (kind ``tmp`` or ``old``), oldest first.

    :func:`write_folder_atomically` removes them itself; only a kill leaves them.
    """
    prefix = f".{dest.name}.{kind}-"
    if not dest.parent.is_dir():
        return []
    found = [p for p in dest.parent.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def interrupted_swap(dest: Path) -> Path | None:
    """The previous ``dest`` that a kill between the two renames set aside, if ``dest`` is missing."""
    if dest.exists():
        return None
    olds = leftover_folders(dest, "old")
    return olds[-1] if olds else None


def recover_folder(dest: str | Path) -> None:
    """Repair what a kill inside :func:`write_folder_atomically` left behind.

    Killed between the two renames, ``dest`` is missing and the previous folder
    waits under ``.{name}.old-*``: it is renamed back (a roll-back, always safe,
    since that folder is whole). Every ``.{name}.tmp-*`` / ``.{name}.old-*``
    left over is then removed.
    """
    dest = Path(dest)
    previous = interrupted_swap(dest)
    if previous is not None:
        os.replace(previous, dest)
    for leftover in leftover_folders(dest, "tmp") + leftover_folders(dest, "old"):
        shutil.rmtree(leftover, ignore_errors=True)


def save_checkpoint(
    path: str | Path,
    model: Transformer,
    tokenizer: Tokenizer,
    extra: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a checkpoint folder atomically; ``dtype`` (e.g. float16) shrinks storage."""
    config = {
        "format": FORMAT,
        "version": 1,
        "model": model.cfg.to_dict(),
        "tokenizer": tokenizer.to_dict(),
    }
    config.update(extra or {})

    def write(tmp: Path) -> None:
        save_file(_state_dict_for_saving(model, dtype), str(tmp / WEIGHTS_FILE))
        tokenizer.save(tmp / TOKENIZER_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
        if train_state is not None:
            torch.save(train_state, tmp / STATE_FILE)

    return write_folder_atomically(Path(path), write)


def load_checkpoint(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> Checkpoint:
    """Load a checkpoint folder (``None``: the bundled model) for inference."""
    info = read_model_info(path)
    path, config, model_cfg, tokenizer = info.path, info.config, info.cfg, info.tokenizer
    model = Transformer(model_cfg, pad_id=tokenizer.pad_id)
    load_weights(model, path)
    model.to(device).eval()
    return Checkpoint(model=model, tokenizer=tokenizer, config=config, path=path)


def load_weights(model: Transformer, path: Path) -> None:
    """Load the folder ``path``'s weights into ``model`` (float32; a tied head is saved once,
    as the embedding); a missing, corrupt or mismatched file is a :class:`BadCheckpointError`."""
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise BadCheckpointError(f"{path}: no {WEIGHTS_FILE}")
    try:
        sd = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise BadCheckpointError(f"{path}: corrupt {WEIGHTS_FILE} ({err})") from None
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    if model.cfg.style == "modern":
        sd.setdefault("head.weight", sd.get("embed.weight"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise BadCheckpointError(
            f"{path}: weights do not match config (missing {len(missing)}, unexpected {len(unexpected)})"
        )
