"""Sampling music from a model: logits processors, grammar masks, search loops, ``Generator``."""

from tunesmith.generation.config import SEARCHES, GenerationConfig
from tunesmith.generation.generator import GenerationResult, Generator

__all__ = ["SEARCHES", "GenerationConfig", "GenerationResult", "Generator"]
