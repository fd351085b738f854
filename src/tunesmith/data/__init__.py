"""tunesmith.data: deterministic split, ``prepare`` (folder -> token cache), ``WindowDataset``.

Names are imported lazily so that ``prepare`` does not pay for importing torch.
"""

from tunesmith.lazy import lazy_exports

_EXPORTS = {
    "assign_splits": "split",
    "prepare": "prepare",
    "PrepareSummary": "prepare",
    "TokenCache": "dataset",
    "WindowDataset": "dataset",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
