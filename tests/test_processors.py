"""The numpy logits transforms give the logits the former torch transforms gave, bit for bit.

The references below are the torch code the search ran before the transforms moved to
numpy (both backends share them now); the torch backend's pinned bytes depend on it.
Ties at a top-k or top-p cut are ranked by id: torch's stable sort, the reference here
(its unstable sort orders ties arbitrarily, which no pin has ever met).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunesmith.generation import processors as P
from tunesmith.generation.sampler import NumpySampler, TorchSampler

NEG_INF = float("-inf")


def torch_temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    scaled = logits / t
    if bool((torch.isfinite(logits) & ~torch.isfinite(scaled)).any()):
        best = logits.max(dim=-1, keepdim=True).values
        return logits.masked_fill(logits < best, NEG_INF)
    return scaled


def torch_top_k(logits: torch.Tensor, k: torch.Tensor, offset: int) -> torch.Tensor:
    B, V = logits.shape
    order = logits.argsort(dim=-1, descending=True, stable=True)
    allowed = torch.isfinite(logits).sum(-1, keepdim=True)
    start = torch.clamp(torch.full_like(allowed, offset), max=allowed - 1).clamp(min=0)
    ranks = torch.arange(V).expand(B, V)
    keep_sorted = (ranks >= start) & (ranks < start + k[:, None]) & (ranks < allowed)
    keep = torch.zeros_like(keep_sorted).scatter_(1, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)


def torch_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    keep_sorted = probs.cumsum(-1) - probs < p
    keep = torch.zeros_like(keep_sorted).scatter_(1, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)


def torch_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def random_logits(seed: int, ties: bool) -> np.ndarray:
    """``(3, 304)`` float32 logits, a third masked; with ``ties``, few distinct values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 304)).astype(np.float32) * 4
    if ties:
        x = np.round(x).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = NEG_INF
    return x


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_numpy_transforms_equal_the_torch_ones(seed: int, ties: bool) -> None:
    x = random_logits(seed, ties)
    t = torch.from_numpy(x.copy())
    seen = np.random.default_rng(seed).random(x.shape) < 0.2
    k = np.array([1, 5, 16])
    cases = [
        (P.temperature(x, 0.7), torch_temperature(t, 0.7)),
        (P.temperature(x, 1e-40), torch_temperature(t, 1e-40)),
        (P.top_k(x, k, 0), torch_top_k(t, torch.from_numpy(k), 0)),
        (P.top_k(x, k, 3), torch_top_k(t, torch.from_numpy(k), 3)),
        (P.top_k(x[:1], 16, 2), torch_top_k(t[:1], torch.tensor([16]), 2)),
        (P.top_p(x, 0.9), torch_top_p(t, 0.9)),
        (P.repetition_penalty(x, seen, 1.3), torch_penalty(t, torch.from_numpy(seen), 1.3)),
        (P.mask(x, seen), torch.where(torch.from_numpy(seen), t, NEG_INF)),
    ]
    for got, want in cases:
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want.numpy())
    assert P.pick_greedy(x).tolist() == t.argmax(-1).tolist()


def test_the_torch_sampler_draws_what_torch_multinomial_drew() -> None:
    x = random_logits(0, False)
    probs = torch.softmax(torch.from_numpy(x), -1)
    gen = torch.Generator().manual_seed(5)
    want = [torch.multinomial(probs, 1, generator=gen).squeeze(-1).tolist() for _ in range(4)]
    sampler = TorchSampler(5)
    assert [sampler.pick(x).tolist() for _ in range(4)] == want


def test_the_numpy_sampler_follows_the_distribution_and_never_a_masked_id() -> None:
    x = np.full((1, 6), NEG_INF, dtype=np.float32)
    x[0, [1, 4]] = np.log([0.25, 0.75])
    sampler = NumpySampler(11)
    draws = np.array([int(sampler.pick(x)[0]) for _ in range(4000)])
    assert set(draws.tolist()) == {1, 4}
    assert abs((draws == 4).mean() - 0.75) < 0.03
    again = NumpySampler(11)
    assert [int(again.pick(x)[0]) for _ in range(50)] == draws[:50].tolist()
