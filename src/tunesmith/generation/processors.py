"""Pure logits transforms over numpy arrays: each takes ``(B, V)`` float32 logits and returns
new ones; both backends share them (the torch step's logits are viewed, not copied).

They compose in any order the loop chooses; masks set logits to -inf and every
transform keeps -inf entries at -inf, so a rule once applied stays applied. Float32
``where``, division, multiplication and addition are IEEE operations, so these give
the logits torch's transforms gave, bit for bit (``tests/test_processors.py``).
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np

NEG_INF = np.float32(-np.inf)


def mask(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Forbid every id where ``allowed`` (``(B, V)`` or ``(V,)`` bool) is False."""
    return np.where(allowed, logits, NEG_INF)


@runtime_checkable
class LogitsRule(Protocol):
    """A rule (``tunesmith.generation.grammar.Rule``) that also reshapes the model's logits.

    The search applies ``adjust_logits`` to the raw ``(B, V)`` logits before any mask,
    with the rule's per-row state moved by the grammar's ``update`` and ``reorder``.
    """

    def adjust_logits(self, logits: np.ndarray) -> np.ndarray: ...


def repetition_penalty(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """Hugging Face's repetition penalty: where ``seen`` (``(B, V)`` bool), divide positive
    logits by ``penalty`` and multiply negative ones by it (-inf stays -inf)."""
    penalised = np.where(logits > 0, logits / np.float32(penalty), logits * np.float32(penalty))
    return np.where(seen, penalised, logits)


def rest_bias(kinds_is_rest: np.ndarray, creativity: int) -> np.ndarray:
    """``(V,)`` log-space bias that multiplies rest tokens' probability by ``1 - creativity/1000``.

    Adding ``log(f)`` to a logit multiplies its softmax weight by ``f`` before
    renormalisation, which is how the original applied its creativity knob.
    """
    factor = 1.0 - creativity / 1000.0
    bias = np.zeros(kinds_is_rest.shape, dtype=np.float32)
    bias[kinds_is_rest] = math.log(factor) if factor > 0 else NEG_INF
    return bias


def temperature(logits: np.ndarray, t: float) -> np.ndarray:
    """Divide by ``t`` (< 1 sharpens, > 1 flattens).

    A ``t`` so small that the division overflows is the limit of sharpening: only the
    most likely candidates (ties included) stay, i.e. greedy.
    """
    if t == 1.0:
        return logits
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # t may round to 0
        scaled = logits / np.float32(t)
    if (np.isfinite(logits) & ~np.isfinite(scaled)).any():
        best = logits.max(axis=-1, keepdims=True)
        return np.where(logits < best, NEG_INF, logits)
    return scaled


def _ranking(logits: np.ndarray) -> np.ndarray:
    """``(B, V)`` ids by logit, highest first; ties by id (torch's CPU sort does the same)."""
    return np.argsort(-logits, axis=-1, kind="stable")


def top_k(logits: np.ndarray, k: np.ndarray | int, offset: int = 0) -> np.ndarray:
    """Keep, per row, the candidates ranked ``offset .. offset+k-1`` by logit.

    ``k`` may differ per row (``(B,)``). The offset drops the n most likely
    candidates, as the original's did. An offset that leaves no candidate under the
    rules is refused once, before decoding (``pitch_masks.check_candidates``); this only
    handles the positions where the grammar itself allows fewer candidates than the
    offset (the lower notes of a chord), by keeping the least likely legal one.
    """
    B, V = logits.shape
    k = np.broadcast_to(np.asarray(k, dtype=np.int64).reshape(-1), (B,))
    order = _ranking(logits)
    allowed = np.isfinite(logits).sum(-1, keepdims=True)  # (B, 1)
    start = np.clip(np.minimum(offset, allowed - 1), 0, None)
    ranks = np.arange(V)[None]
    keep_sorted = (ranks >= start) & (ranks < start + k[:, None]) & (ranks < allowed)
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return np.where(keep, logits, NEG_INF)


def shifted_exp(logits: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Row-wise ``exp(logits - max)`` in ``dtype``: softmax's weights before normalising
    (-inf entries get 0)."""
    x = logits.astype(dtype, copy=False)
    return np.exp(x - x.max(axis=-1, keepdims=True))


def softmax(logits: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Row-wise softmax in ``dtype`` (-inf entries get 0)."""
    e = shifted_exp(logits, dtype)
    return e / e.sum(axis=-1, keepdims=True)


def top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus: keep the smallest set of most likely candidates whose mass reaches ``p``."""
    if p >= 1.0:
        return logits
    order = _ranking(logits)
    probs = softmax(np.take_along_axis(logits, order, axis=1))
    mass_before = probs.cumsum(-1) - probs  # mass of strictly more likely candidates
    keep = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(keep, order, mass_before < np.float32(p), axis=1)  # keeps the first
    return np.where(keep, logits, NEG_INF)


def pick_greedy(logits: np.ndarray) -> np.ndarray:
    """``(B,)`` the most likely id of each row (the first of tied ones)."""
    return logits.argmax(axis=-1)
