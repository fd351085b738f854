"""What a search loop returns, in a torch-free module: reading or writing a result needs no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Decoded:
    """New ids after the prompt and why decoding stopped."""

    ids: list[int]
    stop_reason: str  # "eos" | "length" | "cancelled"
