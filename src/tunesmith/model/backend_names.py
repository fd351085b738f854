"""The decoding backends' names, and whether one can run here, without importing torch.

Building the CLI's parser (``--backend``) and checking a request need only this module,
so ``tunesmith --help`` and a generation that never runs the torch step stay torch-free.
"""

from __future__ import annotations

import importlib.util

from tunesmith.errors import BadParameterError
from tunesmith.model.config import ModelConfig

BACKENDS = ("auto", "torch", "onnx")


def onnxruntime_available() -> bool:
    """Whether the ``fast`` extra (onnxruntime) is installed."""
    # Found, not imported: choosing the backend costs nothing when torch is the answer.
    return importlib.util.find_spec("onnxruntime") is not None


def check_backend(name: object) -> str:
    """``name`` if it is a backend that can run here; else a one-line BadParameterError."""
    if name not in BACKENDS:
        raise BadParameterError(
            f"{name!r} is not a backend (choose from {', '.join(BACKENDS)})", field="backend"
        )
    if name == "onnx" and not onnxruntime_available():
        raise BadParameterError(
            "onnx needs onnxruntime, which is not installed (pip install -e '.[fast]')",
            field="backend",
        )
    return str(name)


def fused_supported(cfg: ModelConfig) -> bool:
    """Whether the fused batch-1 graph can run a model of ``cfg``: ONNX Runtime's operator
    rotates heads of a multiple of 16 only; other models run the step graph."""
    return cfg.style != "modern" or cfg.head_dim % 16 == 0
