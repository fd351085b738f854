"""Pure logits transforms: each takes ``(B, V)`` logits and returns new ones.

They compose in any order the loop chooses; masks set logits to -inf and every
transform keeps -inf entries at -inf, so a rule once applied stays applied.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

NEG_INF = float("-inf")


def mask(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Forbid every id where ``allowed`` (``(B, V)`` or ``(V,)`` bool) is False."""
    return torch.where(allowed, logits, NEG_INF)  # one operation: no inverted mask


@runtime_checkable
class LogitsRule(Protocol):
    """A rule (``tunesmith.generation.grammar.Rule``) that also reshapes the model's logits.

    The search applies ``adjust_logits`` to the raw ``(B, V)`` logits before any mask,
    with the rule's per-row state moved by the grammar's ``update`` and ``reorder``.
    """

    def adjust_logits(self, logits: torch.Tensor) -> torch.Tensor: ...


def repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Hugging Face's repetition penalty: where ``seen`` (``(B, V)`` bool), divide positive
    logits by ``penalty`` and multiply negative ones by it (-inf stays -inf)."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def rest_bias(kinds_is_rest: torch.Tensor, creativity: int) -> torch.Tensor:
    """``(V,)`` log-space bias that multiplies rest tokens' probability by ``1 - creativity/1000``.

    Adding ``log(f)`` to a logit multiplies its softmax weight by ``f`` before
    renormalisation, which is how the original applied its creativity knob.
    """
    factor = 1.0 - creativity / 1000.0
    bias = torch.zeros(kinds_is_rest.shape, dtype=torch.float32)
    bias[kinds_is_rest] = math.log(factor) if factor > 0 else NEG_INF
    return bias


def temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    """Divide by ``t`` (< 1 sharpens, > 1 flattens).

    A ``t`` so small that the division overflows is the limit of sharpening: only the
    most likely candidates (ties included) stay, i.e. greedy.
    """
    if t == 1.0:
        return logits
    scaled = logits / t
    if bool((torch.isfinite(logits) & ~torch.isfinite(scaled)).any()):
        best = logits.max(dim=-1, keepdim=True).values
        return logits.masked_fill(logits < best, NEG_INF)
    return scaled


def top_k(logits: torch.Tensor, k: torch.Tensor | int, offset: int = 0) -> torch.Tensor:
    """Keep, per row, the candidates ranked ``offset .. offset+k-1`` by logit.

    ``k`` may differ per row (``(B,)``). The offset drops the n most likely
    candidates, as the original's did. An offset that leaves no candidate under the
    rules is refused once, before decoding (``generator.check_candidates``); this only
    handles the positions where the grammar itself allows fewer candidates than the
    offset (the lower notes of a chord), by keeping the least likely legal one.
    """
    B, V = logits.shape
    if B == 1:  # the same ranking in a few operations: this runs once a token
        return _top_k_one_row(logits, int(torch.as_tensor(k).reshape(-1)[0]), offset)
    k = torch.as_tensor(k, device=logits.device).expand(B)
    order = logits.argsort(dim=-1, descending=True)  # (B, V)
    allowed = torch.isfinite(logits).sum(-1, keepdim=True)  # (B, 1)
    start = torch.clamp(torch.full_like(allowed, offset), max=allowed - 1).clamp(min=0)
    ranks = torch.arange(V, device=logits.device).expand(B, V)
    keep_sorted = (ranks >= start) & (ranks < start + k[:, None]) & (ranks < allowed)
    keep = torch.zeros_like(keep_sorted).scatter_(1, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)


def _top_k_one_row(logits: torch.Tensor, k: int, offset: int) -> torch.Tensor:
    """:func:`top_k` of one row ``(1, V)``: the ranks ``start .. start+k-1`` of the same sort."""
    allowed = int(torch.isfinite(logits).sum())
    start = max(0, min(offset, allowed - 1))
    keep = logits.argsort(dim=-1, descending=True)[0, start : min(start + k, allowed)]
    out = torch.full_like(logits, NEG_INF)
    out[0, keep] = logits[0, keep]
    return out


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of most likely candidates whose mass reaches ``p``."""
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = probs.cumsum(-1) - probs  # mass of strictly more likely candidates
    keep_sorted = mass_before < p  # always keeps the first
    keep = torch.zeros_like(keep_sorted).scatter_(1, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)


def pick_greedy(logits: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the most likely id of each row."""
    return logits.argmax(dim=-1)


def pick_sample(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``(B,)`` ids drawn from ``softmax(logits)`` with an explicit generator."""
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
