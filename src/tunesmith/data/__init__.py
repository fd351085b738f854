"""tunesmith.data: deterministic split, ``prepare`` (folder -> token cache), ``WindowDataset``.

Names are imported lazily so that ``prepare`` does not pay for importing torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "assign_splits": "tunesmith.data.split",
    "prepare": "tunesmith.data.prepare",
    "PrepareSummary": "tunesmith.data.prepare",
    "TokenCache": "tunesmith.data.dataset",
    "WindowDataset": "tunesmith.data.dataset",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tunesmith.data' has no attribute {name!r}")
