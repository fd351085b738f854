"""The decoder-only Transformer, its KV cache, presets and checkpoint folders."""

from tunesmith.model.cache import KVCache
from tunesmith.model.checkpoint import (
    Checkpoint,
    bundled_model_path,
    load_checkpoint,
    save_checkpoint,
)
from tunesmith.model.config import PRESETS, ModelConfig, preset
from tunesmith.model.transformer import Transformer

__all__ = [
    "PRESETS",
    "Checkpoint",
    "KVCache",
    "ModelConfig",
    "Transformer",
    "bundled_model_path",
    "load_checkpoint",
    "preset",
    "save_checkpoint",
]
