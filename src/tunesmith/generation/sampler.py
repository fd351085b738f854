"""The one backend-specific piece of sampling: drawing ids from the final logits.

``torch``: softmax and ``torch.multinomial`` with a seeded ``torch.Generator``, as every
generation made before the numpy sampler existed (the torch backend's pinned bytes, and
the replay of older onnx records). ``numpy``: a PCG64 stream and an own inverse CDF in
float64 (``Generator.choice`` promises no stream across numpy versions), torch-free;
the onnx backend samples with it. A seed gives the same ids on either, run after run.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tunesmith.generation.processors import shifted_exp

SAMPLERS = ("torch", "numpy")


class Sampler(Protocol):
    """Draws one id per row from ``softmax(logits)``."""

    name: str

    def pick(self, logits: np.ndarray) -> np.ndarray:
        """``(B,)`` int64 ids drawn from ``(B, V)`` logits (-inf: never)."""
        ...


class TorchSampler:
    """``torch.multinomial`` over torch's softmax, with a generator seeded once."""

    name = "torch"

    def __init__(self, seed: int) -> None:
        import torch

        self._torch = torch
        self._generator = torch.Generator().manual_seed(seed)

    def pick(self, logits: np.ndarray) -> np.ndarray:
        torch = self._torch
        probs = torch.softmax(torch.from_numpy(logits).float(), dim=-1)
        return torch.multinomial(probs, 1, generator=self._generator).squeeze(-1).numpy()


class NumpySampler:
    """Inverse CDF over a float64 softmax, one ``random()`` of a PCG64 stream per row."""

    name = "numpy"

    def __init__(self, seed: int) -> None:
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def pick(self, logits: np.ndarray) -> np.ndarray:
        weights = shifted_exp(logits, np.float64)
        out = np.empty(len(weights), dtype=np.int64)
        for r, w in enumerate(weights):
            cdf = np.cumsum(w)
            i = int(np.searchsorted(cdf, self._rng.random() * cdf[-1], side="right"))
            # The first id whose cdf passes u * total has a weight; u * total may round up
            # to the total itself, past every id: then the last id of any weight.
            out[r] = i if i < len(w) else int(np.flatnonzero(w)[-1])
        return out


def make_sampler(name: str, seed: int) -> Sampler:
    """The sampler called ``name`` (one of :data:`SAMPLERS`), seeded with ``seed``."""
    if name == "numpy":
        return NumpySampler(seed)
    return TorchSampler(seed)
