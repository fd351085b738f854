"""Chord charts: symbols, bars, the chord at each step, strong beats, contradictions."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.errors import BadParameterError
from tunesmith.generation.chords import (
    BassRule,
    ChordChart,
    check_chart,
    is_strong_beat,
    parse_chord,
    range_pitch_classes,
)
from tunesmith.generation.constraints import parse_scale


@pytest.mark.parametrize(
    ("symbol", "root", "pcs", "bass"),
    [
        ("C", 0, {0, 4, 7}, 0),
        ("Am", 9, {9, 0, 4}, 9),
        ("G7", 7, {7, 11, 2, 5}, 7),
        ("Fmaj7", 5, {5, 9, 0, 4}, 5),
        ("Dm7", 2, {2, 5, 9, 0}, 2),
        ("Bdim", 11, {11, 2, 5}, 11),
        ("Caug", 0, {0, 4, 8}, 0),
        ("Dsus2", 2, {2, 4, 9}, 2),
        ("Dsus4", 2, {2, 7, 9}, 2),
        ("C/E", 0, {0, 4, 7}, 4),
        ("F#m", 6, {6, 9, 1}, 6),
        ("Bb7", 10, {10, 2, 5, 8}, 10),
        ("Ebmaj7/G", 3, {3, 7, 10, 2}, 7),
        ("C#m7b5", 1, {1, 4, 7, 11}, 1),
        ("Cb", 11, {11, 3, 6}, 11),
        ("A♭m", 8, {8, 11, 3}, 8),
    ],
)
def test_symbols_parse_to_root_pitch_classes_and_bass(
    symbol: str, root: int, pcs: set[int], bass: int
) -> None:
    chord = parse_chord(symbol)
    assert (chord.root, set(chord.pitch_classes), chord.bass) == (root, pcs, bass)


@pytest.mark.parametrize("symbol", ["Hm7", "C9b13", "X", "c", "Am/", "C/H", "Cmaj9"])
def test_unknown_symbols_are_a_one_line_error_naming_them(symbol: str) -> None:
    with pytest.raises(BadParameterError) as err:
        ChordChart.parse(f"Am {symbol} C")
    assert str(err.value) == f"--chords: unknown chord symbol {symbol!r}"


def test_one_chord_per_bar_repeats_to_any_length() -> None:
    chart = ChordChart.parse("Am F C G")
    assert chart.length == 64
    assert [s.chord.symbol for s in chart.spans] == ["Am", "F", "C", "G"]
    assert chart.chord_at(0).symbol == "Am"
    assert chart.chord_at(15).symbol == "Am"
    assert chart.chord_at(16).symbol == "F"
    assert chart.chord_at(63).symbol == "G"
    assert chart.chord_at(64).symbol == "Am"  # the chart repeats
    assert chart.chord_at(64 * 100 + 33).symbol == "C"
    assert chart.is_change(16) and chart.is_change(64) and not chart.is_change(17)
    assert chart.steps_to_change(0) == 16 and chart.steps_to_change(70) == 10


def test_bars_separated_by_bars_share_them_in_whole_beats() -> None:
    chart = ChordChart.parse("Am F | C G")
    assert [(s.chord.symbol, s.start, s.length) for s in chart.spans] == [
        ("Am", 0, 8),
        ("F", 8, 8),
        ("C", 16, 8),
        ("G", 24, 8),
    ]
    three = ChordChart.parse("| C F G | Am |")
    assert [(s.start, s.length) for s in three.spans] == [(0, 8), (8, 4), (12, 4), (16, 16)]
    four = ChordChart.parse("C Am F G | C")
    assert [s.length for s in four.spans] == [4, 4, 4, 4, 16]


@pytest.mark.parametrize("text", ["", "  ", "|", "C | | G"])
def test_empty_charts_and_bars_are_one_line_errors(text: str) -> None:
    with pytest.raises(BadParameterError, match="^--chords: "):
        ChordChart.parse(text)


def test_more_chords_than_beats_in_a_bar_is_an_error() -> None:
    with pytest.raises(BadParameterError, match="^--chords: bar 'C D E F G' has 5 chords"):
        ChordChart.parse("C D E F G | C")


def test_strong_beats_are_beats_one_and_three() -> None:
    assert [s for s in range(48) if is_strong_beat(s)] == [0, 8, 16, 24, 32, 40]


def test_allowed_pitch_classes_are_chord_tones_on_strong_beats() -> None:
    chart = ChordChart.parse("E7 Am")
    a_minor = parse_scale("A:minor")
    assert chart.allowed_pitch_classes(0, a_minor) == {4, 8, 11, 2}
    assert chart.allowed_pitch_classes(8, None) == {4, 8, 11, 2}
    assert chart.allowed_pitch_classes(4, a_minor) == a_minor | {8}
    assert chart.allowed_pitch_classes(5, None) == frozenset(range(12))
    assert chart.allowed_pitch_classes(16 + 8, a_minor) == {9, 0, 4}


def test_range_pitch_classes() -> None:
    assert range_pitch_classes((60, 62)) == {0, 1, 2}
    assert range_pitch_classes((40, 90)) == frozenset(range(12))
    assert range_pitch_classes(None) == frozenset(range(12))


def test_a_chart_that_fits_the_scale_and_range_passes() -> None:
    chart = ChordChart.parse("Am F C G")
    check_chart(chart, parse_scale("C:major"), (48, 84), bass_root=True)
    check_chart(chart, None, None)
    check_chart(ChordChart.parse("C F Am"), parse_scale("C:major"), (60, 60))  # all hold a C


def test_a_chart_that_contradicts_the_scale_is_a_one_line_error() -> None:
    with pytest.raises(BadParameterError) as err:
        check_chart(ChordChart.parse("C F#"), parse_scale("C:major_pentatonic"), None)
    assert str(err.value) == (
        "--chords: --scale and --pitch-range leave no tone of 'F#' to play on its strong beats"
    )


def test_a_chart_that_contradicts_the_range_is_a_one_line_error() -> None:
    with pytest.raises(BadParameterError, match="^--chords: --pitch-range leaves no tone of 'G'"):
        check_chart(ChordChart.parse("C G"), None, (60, 61))


def test_a_chord_without_a_strong_beat_is_not_a_contradiction() -> None:
    # F# stands on beat 2 only: off the strong beats, the key's scale is allowed.
    check_chart(ChordChart.parse("C F# C C |"), parse_scale("C:major"), None)


def test_a_slash_bass_outside_the_scale_contradicts_bass_root_only() -> None:
    chart = ChordChart.parse("C/F# G")
    check_chart(chart, parse_scale("C:major"), None)
    with pytest.raises(BadParameterError, match="^--bass-root: .* bass of 'C/F#'"):
        check_chart(chart, parse_scale("C:major"), None, bass_root=True)


def c_major_legal(lo: int = 48, hi: int = 84) -> np.ndarray:
    pitches = np.arange(128)
    return np.isin(pitches % 12, sorted(parse_scale("C:major"))) & (pitches >= lo) & (pitches <= hi)


def test_bass_rule_values() -> None:
    rule = BassRule(ChordChart.parse("C G/B | Am F"), c_major_legal())
    assert [rule.lowest_bass(s) for s in (0, 8, 16, 24, 33)] == [48, 59, 57, 53, 48]
    assert rule.max_duration(4, 50, 16) == 4  # D 50 would sound under G/B's lowest B (59)
    assert rule.max_duration(4, 60, 40) == 40  # C 60 is above every chord's lowest bass
    assert rule.max_duration(4, 59, 16) == 16  # B 59 held into G/B is its bass
    allowed = rule.allowed_at_change(8)
    assert allowed[47] and allowed[59] and allowed[60] and not allowed[57]
    assert rule.may_leave(8, 59) and rule.may_leave(8, 71) and not rule.may_leave(8, 60)
    assert not rule.may_leave(8, 128) and rule.may_leave(9, 128)


def test_bass_rule_needs_a_playable_bass() -> None:
    with pytest.raises(BadParameterError, match="^--bass-root: .* bass of 'D'"):
        BassRule(ChordChart.parse("C D"), c_major_legal(60, 62) & (np.arange(128) != 62))


def test_random_rows_under_the_bass_rule_put_the_bass_lowest_at_every_change() -> None:
    chart = ChordChart.parse("C G/B | Am F | Dm7 G7 C")
    legal = c_major_legal()
    rule = BassRule(chart, legal)
    rng = np.random.default_rng(1)
    for _ in range(30):
        step, sounding = 0, []  # (end, pitch) of the notes sounding at step
        while step < 3 * chart.length:
            low = 128
            while True:  # notes of this step, high to low
                ok = legal & (np.arange(128) < low)
                if chart.is_change(step):
                    ok &= rule.allowed_at_change(step)
                lowest = min([p for _, p in sounding] + [low])
                leave = rule.may_leave(step, lowest)
                if not ok.any() or (leave and rng.random() < 0.5):
                    assert leave, f"dead end at step {step}"
                    break
                low = int(rng.choice(np.flatnonzero(ok)))
                dur = rule.max_duration(step, low, int(rng.integers(1, 40)))
                sounding.append((step + dur, low))
            if chart.is_change(step):
                assert min(p for _, p in sounding) % 12 == chart.chord_at(step).bass
            step += int(rng.integers(1, chart.steps_to_change(step) + 1))
            sounding = [(e, p) for e, p in sounding if e > step]


def test_pitch_table_rows_match_the_allowed_pitch_classes() -> None:
    chart = ChordChart.parse("E7 Am | Dm")
    key = parse_scale("A:minor")
    table = chart.pitch_table(key)
    assert table.shape == (6, 128)
    for step in range(2 * chart.length):
        row = table[chart.mask_row(step)]
        assert set(np.flatnonzero(row) % 12) == chart.allowed_pitch_classes(step, key)
        assert set(np.flatnonzero(row)) == {
            p for p in range(128) if p % 12 in set(np.flatnonzero(row) % 12)
        }
