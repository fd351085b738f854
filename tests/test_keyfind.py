"""Krumhansl-Kessler key finding: scales and cadences in several keys, real files for sanity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunesmith.generation.constraints import MODES
from tunesmith.generation.keyfind import Key, find_key, key_correlations, pitch_class_weights
from tunesmith.tokenization.midi_io import grid_notes, load_midi


def melody(pitches: list[int], dur: int = 4) -> np.ndarray:
    return np.array([(i * dur, p, dur) for i, p in enumerate(pitches)], dtype=np.int64)


def chords(progression: list[list[int]], dur: int = 16) -> np.ndarray:
    rows = [(i * dur, p, dur) for i, chord in enumerate(progression) for p in sorted(chord)[::-1]]
    return np.array(rows, dtype=np.int64)


def scale_run(tonic: int, mode: str) -> np.ndarray:
    """Up and down the scale from the tonic, the tonic held a bar at both ends."""
    up = [60 + tonic + i for i in MODES[mode]] + [72 + tonic]
    notes = melody(up + up[-2::-1])
    notes[[0, -1], 2] = 16
    return notes


@pytest.mark.parametrize("tonic", [0, 2, 5, 7, 10])
def test_major_scales_are_found(tonic: int) -> None:
    key = find_key(scale_run(tonic, "major"))
    assert (key.tonic, key.mode) == (tonic, "major")
    assert key.correlation > 0.8


@pytest.mark.parametrize("tonic", [9, 4, 2, 0])
def test_harmonic_minor_scales_are_found(tonic: int) -> None:
    key = find_key(scale_run(tonic, "harmonic_minor"))
    assert (key.tonic, key.mode) == (tonic, "minor")


@pytest.mark.parametrize("tonic", range(12))
def test_cadences_in_every_key(tonic: int) -> None:
    root = 48 + tonic
    major = [[root, root + 4, root + 7], [root + 5, root + 9, root + 12]]
    major += [[root + 7, root + 11, root + 14], [root, root + 4, root + 7]]
    assert find_key(chords(major)).tonic == tonic
    assert find_key(chords(major)).mode == "major"
    minor = [[root, root + 3, root + 7], [root + 5, root + 8, root + 12]]
    minor += [[root + 7, root + 11, root + 14], [root, root + 3, root + 7]]
    key = find_key(chords(minor))
    assert (key.tonic, key.mode, key.name[-5:]) == (tonic, "minor", "minor")


def test_durations_weigh_the_notes() -> None:
    weights = pitch_class_weights(np.array([(0, 60, 4), (4, 72, 2), (6, 67, 10)]))
    assert weights[0] == 6 and weights[7] == 10 and weights.sum() == 16


def test_the_relative_minor_wins_when_its_tonic_dominates() -> None:
    notes = scale_run(0, "major")  # C major's notes...
    notes = np.concatenate([notes, [(200, 57, 64), (264, 64, 32)]])  # ... with A and E held long
    assert find_key(notes).name == "A:minor"


def test_no_key_without_notes_or_with_all_pitch_classes_alike() -> None:
    assert find_key(np.zeros((0, 3), dtype=np.int64)) is None
    assert find_key(melody(list(range(60, 72)))) is None


def test_correlations_are_pearson_coefficients() -> None:
    weights = pitch_class_weights(scale_run(7, "major"))
    corr = key_correlations(weights)
    assert corr.shape == (2, 12)
    from tunesmith.generation.keyfind import MAJOR_PROFILE

    expected = np.corrcoef(weights, np.roll(MAJOR_PROFILE, 7))[0, 1]
    assert corr[0, 7] == pytest.approx(expected)


def test_key_scale_and_name() -> None:
    assert Key(3, "major", 0.9).scale == {3, 5, 7, 8, 10, 0, 2}
    assert Key(3, "major", 0.9).name == "Eb:major"
    assert Key(6, "minor", 0.9).name == "F#:minor"


@pytest.mark.parametrize("name", ["AT.mid", "Cids.mid"])
def test_real_files_get_a_confident_key_that_follows_transposition(ff_dir: Path, name: str) -> None:
    notes = grid_notes(load_midi(ff_dir / name)).astype(np.int64)
    key = find_key(notes)
    assert key is not None and key.correlation > 0.6
    for shift in (1, 5, -3):
        moved = notes + [0, shift, 0]
        found = find_key(moved)
        assert (found.tonic, found.mode) == ((key.tonic + shift) % 12, key.mode)
        assert found.correlation == pytest.approx(key.correlation)
