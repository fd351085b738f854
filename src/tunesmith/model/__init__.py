"""The decoder-only Transformer, its KV cache, presets and checkpoint folders.

Names load on first use, so that torch-free parts (``tunesmith.model.backend_names``,
``tunesmith.model.config``, the ONNX decoding step) do not import torch through the package.
"""

from tunesmith.lazy import lazy_exports

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
__getattr__ = lazy_exports(__name__, _WHERE)
