"""The decoding backends' names, and whether one can run here, without importing torch.

Building the CLI's parser (``--backend``) and checking a request need only this module,
so ``tunesmith --help`` and a generation that never runs the torch step stay torch-free.
"""

from __future__ import annotations

import importlib.util
import os

from tunesmith.errors import BadParameterError
from tunesmith.model.config import ModelConfig

BACKENDS = ("auto", "torch", "onnx")
MAX_THREADS = 256


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


def _usable_cores() -> int:
    """Cores this process may run on (its affinity where the OS tells it, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def decode_threads(requested: object = None) -> int:
    """Threads one generation decodes with: ``requested`` (1 to 256), or by default 2 where
    this process may run on 2 or more cores and one of them is idle (the 1-minute load
    average under the cores less one), else 1. A batch-1 step is bound by memory traffic:
    on an idle 2-core machine two threads run the onnx path nearly twice as fast as one
    (more were never measured), but on a busy one threads that spin waiting for each other
    crawl (the torch step at 2 threads beside a training run: 15-20x slower than at 1)."""
    if requested is None:
        cores = _usable_cores()
        # Without a load average (Windows) the machine counts as busy: 1 thread is never slow.
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float(cores)
        return 2 if cores >= 2 and load < cores - 1 else 1
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise BadParameterError(f"must be a whole number, not {requested!r}", field="threads")
    if not 1 <= requested <= MAX_THREADS:
        raise BadParameterError(
            f"must be between 1 and {MAX_THREADS}, not {requested}", field="threads"
        )
    return requested
