"""Sampling music from a model: logits processors, grammar masks, search loops, ``Generator``.

``Generator`` and ``GenerationResult`` load on first use, so that reading the knobs
(``tunesmith.generation.config``, which builds the CLI's options) does not import torch.
"""

from typing import Any

from tunesmith.generation.config import SEARCHES, GenerationConfig

__all__ = ["SEARCHES", "GenerationConfig", "GenerationResult", "Generator"]


def __getattr__(name: str) -> Any:
    if name == "Generator":
        from tunesmith.generation.generator import Generator

        return Generator
    if name == "GenerationResult":
        from tunesmith.generation.result import GenerationResult

        return GenerationResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
