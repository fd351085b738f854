"""Chord charts as parsed values: which chord sounds at each 16th step (masks are built elsewhere).

A chart is chord symbols separated by spaces. Without ``|`` each symbol fills a
bar of 4/4 (16 steps); with ``|`` the chart is split into bars and the chords of
a bar share it in whole beats (``"Am F | C G"``: two beats each; three chords
take 2, 1 and 1 beats). The chart repeats to any length.

Symbols: a root ``A``-``G`` with any ``#``/``b`` (``♯``/``♭``), a quality
(major, ``m``, ``7``, ``maj7``, ``m7``, ``dim``, ``aug``, ``sus2``, ``sus4``, a few
aliases and ``dim7``, ``m7b5``, ``6``, ``m6``), and an optional slash bass
(``C/E``). The strong beats of a bar are beats 1 and 3: steps 0 and 8.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.generation.constraints import TONICS
from tunesmith.tokenization.midi_io import PIANO_HIGH, PIANO_LOW, STEPS_PER_BAR

BEAT_STEPS = 4
STRONG_BEATS = (0, 8)  # beats 1 and 3, as steps within a bar
PITCH_CLASSES = frozenset(range(12))

QUALITIES: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7),
    "maj": (0, 4, 7),
    "M": (0, 4, 7),
    "m": (0, 3, 7),
    "min": (0, 3, 7),
    "-": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "M7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "min7": (0, 3, 7, 10),
    "-7": (0, 3, 7, 10),
    "dim": (0, 3, 6),
    "°": (0, 3, 6),
    "dim7": (0, 3, 6, 9),
    "m7b5": (0, 3, 6, 10),
    "aug": (0, 4, 8),
    "+": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "sus": (0, 5, 7),
    "6": (0, 4, 7, 9),
    "m6": (0, 3, 7, 9),
}
_SYMBOL = re.compile(r"^([A-G])([#b♯♭]*)(.*?)(?:/([A-G])([#b♯♭]*))?$")


@dataclass(frozen=True)
class Chord:
    """One chord symbol: root, bass and every pitch class as 0-11 (C = 0)."""

    symbol: str
    root: int
    pitch_classes: frozenset[int]
    bass: int  # the root, or the slash bass


@dataclass(frozen=True)
class ChordSpan:
    """A chord and the steps it covers in one pass of the chart: ``start .. start + length - 1``."""

    chord: Chord
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


def _pitch_class(letter: str, accidentals: str) -> int:
    sharps = sum(a in "#♯" for a in accidentals)
    return (TONICS[letter] + sharps - (len(accidentals) - sharps)) % 12


def parse_chord(symbol: str) -> Chord:
    """A :class:`Chord` from a symbol such as ``Am``, ``F#maj7``, ``Bb7``, ``C/E``."""
    found = _SYMBOL.match(symbol)
    if found is None or found.group(3) not in QUALITIES:
        raise BadParameterError(f"--chords: unknown chord symbol {symbol!r}")
    letter, accidentals, quality, bass_letter, bass_accidentals = found.groups()
    root = _pitch_class(letter, accidentals)
    pcs = frozenset((root + i) % 12 for i in QUALITIES[quality])
    bass = root if bass_letter is None else _pitch_class(bass_letter, bass_accidentals)
    return Chord(symbol, root, pcs, bass)


def _beats_per_chord(n: int, bar: str) -> list[int]:
    """Whole beats for ``n`` chords sharing a 4-beat bar, the earlier chords taking the extra."""
    beats = STEPS_PER_BAR // BEAT_STEPS
    if not 1 <= n <= beats:
        raise BadParameterError(
            f"--chords: bar {bar!r} has {n} chords (a bar takes 1 to {beats}, one beat at least each)"
        )
    return [beats // n + (i < beats % n) for i in range(n)]


def _bars(text: str) -> list[list[str]]:
    if "|" not in text:
        return [[symbol] for symbol in text.split()]
    return [bar.split() for bar in text.strip().strip("|").split("|")]


@dataclass(frozen=True)
class ChordChart:
    """A parsed ``--chords`` chart; see the module docstring. Steps count from the chart's start."""

    text: str
    spans: tuple[ChordSpan, ...]

    @classmethod
    def parse(cls, text: str) -> ChordChart:
        """Parse ``"Am F C G"`` or ``"Am F | C G"``; one-line error naming a bad symbol or bar."""
        bars = _bars(text)
        if not bars or not any(bars):
            raise BadParameterError(f'--chords: {text!r} has no chord (e.g. "Am F C G")')
        spans: list[ChordSpan] = []
        step = 0
        for bar in bars:
            for symbol, beats in zip(bar, _beats_per_chord(len(bar), " ".join(bar)), strict=True):
                spans.append(ChordSpan(parse_chord(symbol), step, beats * BEAT_STEPS))
                step += beats * BEAT_STEPS
        return cls(text, tuple(spans))

    @property
    def length(self) -> int:
        """Steps of one pass of the chart (a whole number of bars)."""
        return self.spans[-1].end

    def span_at(self, step: int) -> ChordSpan:
        """The span (within one pass) of the chord sounding at ``step``; the chart repeats."""
        local = step % self.length
        for span in self.spans:
            if local < span.end:
                return span
        raise AssertionError("spans cover the whole pass")

    def chord_at(self, step: int) -> Chord:
        """The chord sounding at ``step`` (0 = the chart's first step)."""
        return self.span_at(step).chord

    def is_change(self, step: int) -> bool:
        """Does a chord start at ``step`` (including the repeat of the same chord)?"""
        return self.span_at(step).start == step % self.length

    def steps_to_change(self, step: int) -> int:
        """Steps from ``step`` to the next chord start after it (1 .. span length)."""
        span = self.span_at(step)
        return span.end - step % self.length

    def allowed_pitch_classes(self, step: int, key: Iterable[int] | None) -> frozenset[int]:
        """Pitch classes a note starting at ``step`` may take under the chart.

        Chord tones on a strong beat; elsewhere chord tones or the key's scale
        (``key`` None: any pitch class).
        """
        return _allowed(self.chord_at(step), is_strong_beat(step), key)

    def mask_row(self, step: int) -> int:
        """Row of :meth:`pitch_table` for a note starting at ``step``: ``2 * span + strong``."""
        return 2 * self.spans.index(self.span_at(step)) + is_strong_beat(step)

    def pitch_table(self, key: Iterable[int] | None) -> np.ndarray:
        """``(2 * len(spans), 128)`` bool: per chord, off and on strong beats, the pitches allowed.

        The grammar looks a row up per step (:meth:`mask_row`) instead of building masks.
        """
        pcs = np.arange(128) % 12
        rows = [
            np.isin(pcs, sorted(_allowed(span.chord, strong, key)))
            for span in self.spans
            for strong in (False, True)
        ]
        return np.stack(rows)


def _allowed(chord: Chord, strong: bool, key: Iterable[int] | None) -> frozenset[int]:
    """Chord tones on a strong beat; chord tones or the key's scale (None: any) elsewhere."""
    if strong:
        return chord.pitch_classes
    return PITCH_CLASSES if key is None else chord.pitch_classes | frozenset(key)


def is_strong_beat(step: int) -> bool:
    """Beats 1 and 3 of a 4/4 bar (steps 0 and 8 of every 16)."""
    return step % STEPS_PER_BAR in STRONG_BEATS


def range_pitch_classes(pitch_range: tuple[int, int] | None) -> frozenset[int]:
    """Pitch classes with at least one pitch in the range (the piano's without one)."""
    lo, hi = pitch_range or (PIANO_LOW, PIANO_HIGH)
    return frozenset(p % 12 for p in range(lo, min(hi, lo + 11) + 1))


def check_chart(
    chart: ChordChart,
    scale: frozenset[int] | None,
    pitch_range: tuple[int, int] | None,
    bass_root: bool = False,
) -> None:
    """Raise a one-line :class:`BadParameterError` if some strong beat leaves no legal note.

    A note on a strong beat must be a chord tone, in ``scale`` (None: any) and
    in ``pitch_range``; with ``bass_root`` the chord's bass must be playable too.
    """
    legal = range_pitch_classes(pitch_range) & (PITCH_CLASSES if scale is None else scale)
    rules = "--scale and --pitch-range leave" if scale is not None else "--pitch-range leaves"
    for span in chart.spans:
        chord = span.chord
        strong = any(is_strong_beat(s) for s in range(span.start, span.end))
        if strong and not chord.pitch_classes & legal:
            raise BadParameterError(
                f"--chords: {rules} no tone of {chord.symbol!r} to play on its strong beats"
            )
        if bass_root and chord.bass not in legal:
            raise BadParameterError(
                f"--bass-root: {rules} no room for the bass of {chord.symbol!r} from --chords"
            )


class BassRule:
    """``--bass-root`` as values: at each chord change the lowest sounding note is the chord's bass.

    A row must stop at every change (:meth:`ChordChart.steps_to_change` caps a
    rest); a note may be held across a change only above the lowest playable
    bass of that chord, so a bass below it can always still come; at the change a
    note may go below that bass only if it is one (notes of a step go high to
    low); the row leaves the change once its lowest sounding note is a bass.
    """

    def __init__(self, chart: ChordChart, legal: np.ndarray) -> None:
        """``legal``: ``(128,)`` bool of the pitches the other rules allow (scale, range)."""
        self.chart = chart
        pitches = np.arange(128)
        self._lowest_bass: list[int] = []
        for span in chart.spans:
            found = np.flatnonzero(legal & (pitches % 12 == span.chord.bass))
            if len(found) == 0:
                raise BadParameterError(
                    f"--bass-root: no allowed pitch is the bass of {span.chord.symbol!r}"
                )
            self._lowest_bass.append(int(found[0]))

    def lowest_bass(self, step: int) -> int:
        """The lowest playable bass pitch of the chord sounding at ``step``."""
        return self._lowest_bass[self.chart.spans.index(self.chart.span_at(step))]

    def max_duration(self, step: int, pitch: int, longest: int) -> int:
        """Longest duration (<= ``longest``) of ``pitch`` from ``step`` that no change forbids."""
        change = step + self.chart.steps_to_change(step)
        while change < step + longest:
            if pitch < self.lowest_bass(change):
                return change - step  # end at that change, where it would bury the bass
            change += self.chart.steps_to_change(change)
        return longest

    def allowed_at_change(self, step: int) -> np.ndarray:
        """``(128,)`` bool for notes starting at a change: the bass, or above its lowest pitch."""
        pitches = np.arange(128)
        bass = self.chart.chord_at(step).bass
        return (pitches % 12 == bass) | (pitches > self.lowest_bass(step))

    def may_leave(self, step: int, lowest_sounding: int) -> bool:
        """May the row advance past ``step``? At a change only over the chord's bass."""
        if not self.chart.is_change(step):
            return True
        return lowest_sounding < 128 and lowest_sounding % 12 == self.chart.chord_at(step).bass
