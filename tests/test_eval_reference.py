"""The scale of the KDE overlap: sets of real training pieces against the held-out excerpts."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.evaluation.metrics import compute_metrics
from tunesmith.evaluation.reference import DRAWS, reference_overlaps


def piece(rng: np.random.Generator, notes: int = 48, other: bool = False) -> np.ndarray:
    """A random piece; ``other``: from another source (denser, higher, narrower, longer notes)."""
    steps = np.sort(rng.integers(0, (1 if other else 4) * notes, notes))
    steps -= steps[0] - steps[0] % 16
    pitches = (72 + rng.integers(0, 8, notes)) if other else (48 + rng.integers(0, 24, notes))
    durations = rng.integers(8, 16, notes) if other else rng.integers(1, 8, notes)
    return np.stack([steps, pitches, durations], axis=1).astype(np.int64)


def test_real_sets_from_one_source_score_high_and_others_lower() -> None:
    rng = np.random.default_rng(0)
    held_out = compute_metrics([piece(rng) for _ in range(16)])
    same = [piece(rng) for _ in range(40)]
    higher = [piece(rng, other=True) for _ in range(40)]
    ref = reference_overlaps(held_out, same, higher, pieces=8, seed=3)
    assert ref["excerpts"]["pieces"] == 8 and ref["excerpts"]["pool"] == 40
    assert ref["excerpts"]["draws"] == DRAWS
    assert ref["excerpts"]["min"] <= ref["excerpts"]["mean"] <= ref["excerpts"]["max"] <= 1
    assert ref["excerpts"]["mean"] > ref["openings"]["mean"] + 0.05
    # The draws follow the seed.
    assert reference_overlaps(held_out, same, higher, pieces=8, seed=3) == ref


def test_a_kind_without_pieces_is_none_and_small_pools_give_what_they_have() -> None:
    rng = np.random.default_rng(1)
    held_out = compute_metrics([piece(rng) for _ in range(6)])
    ref = reference_overlaps(held_out, [piece(rng) for _ in range(3)], [], pieces=24)
    assert ref["openings"] is None
    assert ref["excerpts"]["pieces"] == 3
    assert ref["excerpts"]["std"] == pytest.approx(0.0)  # every draw is the whole pool


def test_pieces_from_nothing_are_also_compared_with_real_openings() -> None:
    from tunesmith.evaluation.summary import by_setting

    rng = np.random.default_rng(2)
    excerpts = [piece(rng) for _ in range(8)]
    openings = [piece(rng, other=True) for _ in range(6)]
    grids = [piece(rng, other=True) for _ in range(6)]  # like the openings, unlike the excerpts
    pieces = [
        {"setting": f"top_k/{start}", "search": "top_k", "start": start,
         "memorisation": {"length_notes": 3}}
        for start in ("nothing",) * 3 + ("test_opening",) * 3
    ]  # fmt: skip
    out = by_setting(excerpts, pieces, grids, openings)
    assert "vs_openings" not in out["top_k/test_opening"]
    vs = out["top_k/nothing"]["vs_openings"]
    assert vs["openings"] == 6 and vs["mean_overlap"] > out["top_k/nothing"]["mean_overlap"]
    assert "vs_openings" not in by_setting(excerpts, pieces, grids)["top_k/nothing"]
