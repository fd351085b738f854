"""The decoder-only Transformer, its KV cache, presets and checkpoint folders.

Names load on first use, so that torch-free parts (``tunesmith.model.backend_names``,
``tunesmith.model.config``, the ONNX decoding step) do not import torch through the package.
"""

from importlib import import_module
from typing import Any

# Public name -> the module that defines it.
_WHERE = {
    "PRESETS": "config",
    "ModelConfig": "config",
    "preset": "config",
    "Checkpoint": "checkpoint",
    "bundled_model_path": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "KVCache": "cache",
    "Transformer": "transformer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
