"""Musical statistics: hand-computed values, MusPy's values, and the overlapping area."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

from tunesmith.evaluation import metrics as M
from tunesmith.evaluation import overlap as O
from tunesmith.tokenization.midi_io import grid_notes, load_midi, score_from_grid

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
FF = DATASETS / "final-fantasy-piano"


def rows(*notes: tuple[int, int, int]) -> np.ndarray:
    return np.array(notes, dtype=np.int64).reshape(-1, 3)


C_MAJOR_QUARTERS = rows(*[(4 * i, p, 4) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])])


def test_scale_in_quarters() -> None:
    m = M.piece_metrics(C_MAJOR_QUARTERS)
    # Pitch classes C twice, six others once: -(1/4 log 1/4 + 6 * 1/8 log 1/8) = 0.5 + 2.25.
    assert m["pitch_class_entropy"] == pytest.approx(2.75)
    assert m["pitch_range"] == 12
    assert m["n_pitch_classes"] == 7
    assert m["n_pitches"] == 8
    assert m["polyphony"] == 1.0
    assert m["note_density"] == 1.0  # 8 notes in 8 beats
    assert m["empty_beat_rate"] == 0.0
    assert m["scale_consistency"] == 1.0
    assert m["groove_consistency"] == 1.0  # both bars: onsets on every beat


def test_rests_chords_and_grooves() -> None:
    # Quarter note, quarter rest: the piece spans 7 beats, 3 of them silent. (MusPy
    # would say 0: it counts the beat on which a note ends as sounding.)
    rests = rows((0, 60, 4), (8, 60, 4), (16, 60, 4), (24, 60, 4))
    assert M.empty_beat_rate(rests) == pytest.approx(3 / 7)
    assert M.note_density(rests) == pytest.approx(4 / 7)
    assert M.pitch_class_entropy(rests) == 0.0

    chords = rows((0, 67, 16), (0, 64, 16), (0, 60, 16), (16, 69, 16), (16, 65, 16), (16, 62, 16))
    assert M.polyphony(chords) == 3.0
    assert M.scale_consistency(chords) == 1.0
    assert M.groove_consistency(chords) == 1.0

    # Bar 1 has onsets on 4 beats, bar 2 on its first only: 3 of 16 positions differ.
    groove = rows((0, 60, 4), (4, 60, 4), (8, 60, 4), (12, 60, 4), (16, 60, 16))
    assert M.groove_consistency(groove) == pytest.approx(1 - 3 / 16)
    assert math.isnan(M.groove_consistency(groove, bar_steps=32))  # a single bar

    # Overlapping notes of one pitch sound once.
    overlap = rows((0, 60, 8), (4, 60, 8), (4, 66, 2), (6, 64, 2))
    # C sounds on 12 steps, F# and E on 2 each.
    assert M.polyphony(overlap) == pytest.approx(16 / 12)
    assert M.scale_consistency(overlap) == pytest.approx(1.0)  # G major holds C, E and F#


def test_histograms() -> None:
    durs = [1, 2, 3, 4, 6, 8, 12, 16, 32, 64]
    h = M.duration_histogram(rows(*[(i, 60, d) for i, d in enumerate(durs)]))
    np.testing.assert_allclose(h, np.full(10, 0.1))
    pch = M.pitch_class_histogram(C_MAJOR_QUARTERS)
    assert pch.sum() == pytest.approx(1.0)
    assert pch[0] == pytest.approx(0.25) and pch[1] == 0


def test_empty_piece_is_nan_not_an_error() -> None:
    m = M.piece_metrics(rows())
    assert m["pitch_range"] == 0 and m["n_pitches"] == 0
    for name in (
        "pitch_class_entropy",
        "polyphony",
        "note_density",
        "empty_beat_rate",
        "scale_consistency",
        "groove_consistency",
    ):
        assert math.isnan(m[name]), name
    ms = M.compute_metrics([rows(), C_MAJOR_QUARTERS])
    assert len(ms) == 2 and ms.histograms["duration_histogram"].shape == (2, len(M.DURATION_BINS))
    assert ms.summary()["polyphony"]["n"] == 1


def test_score_and_grid_agree() -> None:
    score = score_from_grid(C_MAJOR_QUARTERS)
    assert M.piece_metrics(score) == M.piece_metrics(C_MAJOR_QUARTERS)


def test_overlapping_area_matches_two_normals() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 3000), rng.normal(1, 1, 3000)
    # Two unit normals one apart overlap by 2 * Phi(-1/2) = 0.617.
    assert O.overlapping_area(a, b) == pytest.approx(
        2 * 0.5 * math.erfc(0.5 / math.sqrt(2)), abs=0.03
    )
    assert O.overlapping_area(a, a) == pytest.approx(1.0, abs=1e-6)
    assert O.overlapping_area(a, b) == pytest.approx(O.overlapping_area(b, a))
    assert O.overlapping_area(a, a + 100) < 1e-6


def test_overlapping_area_edge_cases() -> None:
    assert O.overlapping_area([3, 3, 3], [3, 3]) == 1.0
    assert O.overlapping_area([3, 3, 3], [9, 9]) < 0.01  # constant sets borrow the pooled spread
    assert 0 < O.overlapping_area([1.0], [1.5, 2.0, 2.5]) < 1
    assert math.isnan(O.overlapping_area([], [1, 2]))
    assert math.isnan(O.overlapping_area([math.nan], [1, 2]))
    assert O.overlapping_area([1, 2, math.nan], [1, 2]) == pytest.approx(1.0, abs=1e-6)


def test_overlapping_area_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2, 1, 60), rng.normal(3, 1.5, 40)
    x = np.linspace(-10, 20, 20001)
    low = np.minimum(stats.gaussian_kde(a)(x), stats.gaussian_kde(b)(x))
    expected = float(((low[1:] + low[:-1]) / 2 * np.diff(x)).sum())
    assert O.overlapping_area(a, b) == pytest.approx(expected, abs=2e-3)


def test_histogram_overlap_and_compare() -> None:
    a = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    assert O.histogram_overlap(a, a) == pytest.approx(1.0)
    assert O.histogram_overlap(a, np.array([[0, 0, 1.0]])) == 0.0
    assert O.histogram_overlap(a, np.array([[0.5, 0, 0.5]])) == pytest.approx(0.5)
    real = M.compute_metrics([C_MAJOR_QUARTERS, C_MAJOR_QUARTERS + [0, 2, 0]])
    comp = M.compare_metrics(real, real)
    assert set(comp) == set(M.SCALAR_METRICS) | set(M.HISTOGRAM_METRICS)
    assert comp["pitch_range"]["overlap"] == 1.0
    assert comp["pitch_class_histogram"]["overlap"] == pytest.approx(1.0)


@pytest.mark.skipif(not FF.is_dir(), reason=f"{FF} not found")
def test_real_files_give_sane_values() -> None:
    files = sorted(FF.glob("*.mid"))[:10]
    ms = M.compute_metrics(load_midi(f) for f in files)
    assert not any(np.isnan(v).any() for v in ms.scalars.values())
    assert ((ms.scalars["scale_consistency"] > 0.5) & (ms.scalars["scale_consistency"] <= 1)).all()
    assert (ms.scalars["pitch_class_entropy"] <= math.log2(12) + 1e-9).all()
    np.testing.assert_allclose(ms.histograms["pitch_class_histogram"].sum(axis=1), 1.0)


@pytest.mark.skipif(not FF.is_dir(), reason=f"{FF} not found")
def test_values_equal_muspys(tmp_path: Path) -> None:
    """Every metric MusPy has, on real files; the time-span ones on notes one tick shorter."""
    muspy = pytest.importorskip("muspy")
    for f in sorted(FF.glob("*.mid"))[:6]:
        grid = grid_notes(load_midi(f)).astype(np.int64)
        score_from_grid(grid).dump_midi(str(tmp_path / "x.mid"))
        music = muspy.read_midi(str(tmp_path / "x.mid"))
        on_grid = copy.deepcopy(music)  # groove consistency depends on the resolution
        on_grid.adjust_resolution(4)
        shortened = copy.deepcopy(music)
        for music_ in (on_grid, shortened):
            for track in music_.tracks:
                for note in track.notes:
                    note.duration -= 1  # MusPy's closed spans become our half-open ones
        ours = M.piece_metrics(grid)
        assert ours["pitch_class_entropy"] == pytest.approx(muspy.pitch_class_entropy(music))
        assert ours["pitch_range"] == muspy.pitch_range(music)
        assert ours["n_pitch_classes"] == muspy.n_pitch_classes_used(music)
        assert ours["n_pitches"] == muspy.n_pitches_used(music)
        assert ours["polyphony"] == pytest.approx(muspy.polyphony(music))
        assert ours["scale_consistency"] == pytest.approx(muspy.scale_consistency(music))
        assert ours["empty_beat_rate"] == pytest.approx(muspy.empty_beat_rate(shortened))
        assert ours["groove_consistency"] == pytest.approx(muspy.groove_consistency(on_grid, 16))
