"""What a checkpoint folder says about its model without loading the weights (no torch).

A decoding on a cached ONNX export of the checkpoint needs only this: the model's
config, its tokenizer, and the weights file's checksum (the export's key and the
sidecar's ``model_sha256``). :func:`~tunesmith.model.checkpoint.load_checkpoint`
validates the same way, then loads the weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tunesmith.errors import BadCheckpointError
from tunesmith.model.config import ModelConfig
from tunesmith.tokenization import Tokenizer, tokenizer_from_dict

FORMAT = "tunesmith-checkpoint"
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, STATE_FILE = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "train_state.pt",
)


def file_checksum(path: str | Path, n: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def bundled_model_path() -> Path:
    """The pretrained model that ships inside the package."""
    return Path(__file__).resolve().parent.parent / "pretrained" / "ff-piano"


def read_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint folder, validated as tunesmith's."""
    path = Path(path)
    if not path.exists():
        raise BadCheckpointError(f"{path}: no such checkpoint")
    if not path.is_dir() or not (path / CONFIG_FILE).is_file():
        raise BadCheckpointError(f"{path}: not a tunesmith checkpoint (no {CONFIG_FILE})")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BadCheckpointError(f"{path}: unreadable {CONFIG_FILE} ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise BadCheckpointError(
            f"{path}: not a tunesmith checkpoint ({CONFIG_FILE} has no tunesmith format tag)"
        )
    return config


@dataclass
class ModelInfo:
    """A checkpoint folder's model config and tokenizer, validated; its weights unread."""

    path: Path
    config: dict[str, Any]
    cfg: ModelConfig
    tokenizer: Tokenizer

    @cached_property
    def checksum(self) -> str:
        """A short sha256 of the weights file, for reproducibility records."""
        return file_checksum(self.path / WEIGHTS_FILE)


def read_model_info(path: str | Path | None = None) -> ModelInfo:
    """The config and tokenizer of a checkpoint folder (``None``: the bundled model)."""
    path = Path(path) if path is not None else bundled_model_path()
    if not path.exists() and path == bundled_model_path():
        raise BadCheckpointError(
            "the bundled model is missing from this install; pass --model PATH"
        )
    config = read_config(path)
    try:
        model_cfg = ModelConfig.from_dict(config["model"])
        tokenizer = tokenizer_from_dict(config["tokenizer"])
    except (KeyError, TypeError) as err:
        raise BadCheckpointError(f"{path}: incomplete {CONFIG_FILE} ({err})") from None
    if tokenizer.vocab_size != model_cfg.vocab_size:
        raise BadCheckpointError(
            f"{path}: tokenizer has {tokenizer.vocab_size} ids but the model {model_cfg.vocab_size}"
        )
    if model_cfg.bar_positions and tokenizer.name != "pairs":  # the clock reads pairs ids
        raise BadCheckpointError(f"{path}: bar positions need the pairs tokenizer")
    return ModelInfo(path, config, model_cfg, tokenizer)
