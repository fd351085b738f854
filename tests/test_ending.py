"""Ending helpers for --bars N --end: the last bar, the tonic's pitches, the final chord's rules."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.errors import BadParameterError
from tunesmith.generation.constraints import parse_scale
from tunesmith.generation.ending import (
    EndingPlan,
    bars_for_seconds,
    check_length,
    mode_of_scale,
    tonic_of_scale,
    tonic_pitches,
)


def test_the_last_bar_of_eight() -> None:
    plan = EndingPlan(tonic=0, mode="major", bars=8)
    assert (plan.chord_step, plan.end_step) == (112, 128)
    assert [s for s in range(200) if plan.in_final_bar(s)] == list(range(112, 128))


def test_tonic_pitches_in_a_range() -> None:
    assert tonic_pitches(0, (48, 72)) == [48, 60, 72]
    assert tonic_pitches(9, (50, 60)) == [57]
    assert tonic_pitches(9, None)[0] == 21 and tonic_pitches(9, None)[-1] == 105
    assert tonic_pitches(1, (62, 72)) == []


def test_rests_and_notes_stop_at_the_final_chord() -> None:
    plan = EndingPlan(tonic=7, mode="major", bars=4)
    assert plan.max_advance(10) == 38 and plan.max_advance(47) == 1
    assert plan.max_advance(48) == 16 and plan.max_advance(50) == 14
    assert plan.note_durations(40) == range(1, 9)
    assert plan.note_durations(0) == range(1, 49)
    assert plan.note_durations(48) == range(16, 17)  # the chord is held to the bar's end


def test_the_final_chord_is_the_tonic_triad_over_a_tonic_bass() -> None:
    plan = EndingPlan(tonic=9, mode="minor", bars=2, pitch_range=(48, 80))
    first = plan.allowed_pitches(16, low=128)
    assert set(np.flatnonzero(first) % 12) == {9, 0, 4}
    # C 48 and E 52 would leave no A below them in range: the lowest choice is A 57.
    assert np.flatnonzero(first).min() == 57 and first[60]
    assert np.flatnonzero(first).max() == 76
    # Notes go from high to low: below the latest one only.
    assert np.flatnonzero(plan.allowed_pitches(16, low=64)).max() == 60
    assert not plan.allowed_pitches(17, low=128).any()  # nothing starts after the chord
    assert plan.allowed_pitches(15, low=128).all()  # before the last bar, the ending asks nothing


def test_the_row_leaves_the_final_chord_only_over_a_tonic() -> None:
    plan = EndingPlan(tonic=0, mode="major", bars=3)
    assert not plan.may_leave(32, low=128)  # no note yet
    assert not plan.may_leave(32, low=64)  # E at the bottom
    assert plan.may_leave(32, low=48)
    assert plan.may_leave(31, low=128) and plan.may_leave(40, low=128)


def test_any_path_through_the_masks_ends_on_the_tonic() -> None:
    """Walk random choices through the final step's masks: every chord has a tonic bass."""
    rng = np.random.default_rng(0)
    for tonic, mode, rng_range in [
        (0, "major", (40, 70)),
        (4, "minor", (30, 100)),
        (11, "major", None),
    ]:
        plan = EndingPlan(tonic=tonic, mode=mode, bars=1, pitch_range=rng_range)
        for _ in range(50):
            low, chord = 128, []
            while True:
                options = np.flatnonzero(plan.allowed_pitches(0, low))
                if plan.may_leave(0, low) and (rng.random() < 0.4 or len(options) == 0):
                    break
                assert len(options), "a dead end: no pitch and no way out"
                low = int(rng.choice(options))
                chord.append(low)
            assert chord[-1] % 12 == tonic and chord == sorted(chord, reverse=True)


def test_a_range_without_a_tonic_is_a_one_line_error() -> None:
    with pytest.raises(BadParameterError, match="^--end: --pitch-range 62-72 holds no tonic"):
        EndingPlan(tonic=1, mode="major", bars=4, pitch_range=(62, 72))


def test_end_needs_a_length() -> None:
    with pytest.raises(BadParameterError, match="^--end: needs a length"):
        check_length(True, None, None)
    check_length(True, 8, None)
    check_length(True, None, 30.0)
    check_length(False, None, None)


def test_seconds_become_whole_bars() -> None:
    assert bars_for_seconds(8.0, 120.0) == 4  # 16 beats
    assert bars_for_seconds(8.1, 120.0) == 5
    assert bars_for_seconds(0.1, 60.0) == 1
    with pytest.raises(BadParameterError, match="^--seconds: "):
        bars_for_seconds(0.0, 120.0)


def test_tonic_and_mode_of_a_scale() -> None:
    assert tonic_of_scale("F#:dorian") == 6 and tonic_of_scale("Bb:minor") == 10
    assert mode_of_scale(6, parse_scale("F#:dorian")) == "minor"
    assert mode_of_scale(0, parse_scale("C:mixolydian")) == "major"
    assert mode_of_scale(9, parse_scale("A:minor_pentatonic")) == "minor"
