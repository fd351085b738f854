"""Generated pieces are compared with real excerpts of their own length: a piece that the
model ended early meets the excerpts cut to as many notes, weighted by how many pieces have
that length."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.evaluation import metrics as M
from tunesmith.evaluation.equal_length import real_at_lengths
from tunesmith.evaluation.overlap import histogram_overlap, overlapping_area
from tunesmith.evaluation.summary import by_setting


def excerpt(seed: int, notes: int = 64) -> np.ndarray:
    """A random piece of ``notes`` notes that rises over its length (its range grows with it)."""
    rng = np.random.default_rng(seed)
    steps = np.sort(rng.integers(0, 4 * notes, notes))
    steps -= steps[0] - steps[0] % 16
    pitches = 40 + np.arange(notes) // 2 + rng.integers(0, 6, notes)
    return np.stack([steps, pitches, rng.integers(1, 8, notes)], axis=1).astype(np.int64)


SEGMENTS = [excerpt(s) for s in range(12)]


def test_full_length_pieces_meet_the_excerpts_themselves() -> None:
    real = real_at_lengths(SEGMENTS, [64, 64, 64])
    plain = M.compute_metrics(SEGMENTS)
    assert real.weights is None and len(real) == len(SEGMENTS)
    for name in M.SCALAR_METRICS:
        np.testing.assert_array_equal(real.scalars[name], plain.scalars[name])


def test_shorter_pieces_meet_cut_excerpts_weighted_by_their_share() -> None:
    real = real_at_lengths(SEGMENTS, [64, 64, 64, 32])
    assert len(real) == len(SEGMENTS)  # the excerpts are the independent pieces
    assert real.row_weights().sum() == pytest.approx(1.0)
    cut = M.compute_metrics([s[:32] for s in SEGMENTS]).scalars["pitch_range"]
    values, weights = real.scalars["pitch_range"], real.row_weights()
    at_32 = np.isin(np.arange(len(values)), np.flatnonzero(weights == weights.min()))
    assert sorted(values[at_32]) == sorted(cut)
    assert weights[at_32].sum() == pytest.approx(1 / 4)  # one piece in four has 32 notes


def test_pieces_cut_like_the_excerpts_overlap_fully() -> None:
    pieces = [s[:32] for s in SEGMENTS]
    setting = [{"setting": "top_k/nothing", "search": "top_k", "start": "nothing",
                "memorisation": {"length_notes": 0}} for _ in pieces]  # fmt: skip
    summary = by_setting(SEGMENTS, setting, pieces)["top_k/nothing"]
    assert summary["overlaps"]["pitch_range"] == pytest.approx(1.0, abs=1e-6)
    assert summary["mean_overlap"] == pytest.approx(1.0, abs=1e-6)
    # Against the whole excerpts, the short pieces' ranges are narrower: no longer identical.
    whole = M.compare_metrics(M.compute_metrics(SEGMENTS), M.compute_metrics(pieces))
    assert whole["pitch_range"]["overlap"] < 0.9


def test_weights_count_like_repeated_values() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20), rng.normal(0.5, 1.2, 30)
    twice = np.concatenate([a, a])
    weighted = overlapping_area(twice, b, np.full(40, 1 / 40), a_independent=20)
    assert weighted == pytest.approx(overlapping_area(a, b), abs=1e-9)
    rows_a, rows_b = rng.random((5, 12)), rng.random((7, 12))
    doubled = histogram_overlap(np.vstack([rows_a, rows_a]), rows_b, np.full(10, 0.1))
    assert doubled == pytest.approx(histogram_overlap(rows_a, rows_b), abs=1e-12)


def test_no_excerpt_is_refused() -> None:
    with pytest.raises(ValueError, match="no real excerpt"):
        real_at_lengths([], [10])
