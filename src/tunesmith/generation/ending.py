"""A real ending for ``--bars N --end``: the last bar is one tonic chord, the tonic at the bottom.

The plan (pure values; the grammar turns them into masks): every note of the
piece's last bar starts on its first step (the *final chord*) and is held to the
bar's end; its pitches are tones of the tonic triad, the lowest of them the
tonic. Notes before the last bar end by its first step, and no rest jumps over
it, so the chord is all that sounds there and nothing can bury the tonic bass.
Steps count from where the generated bars start (the grammar's ``elapsed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.generation.constraints import TONICS
from tunesmith.tokenization.midi_io import PIANO_HIGH, PIANO_LOW, STEPS_PER_BAR
from tunesmith.tokenization.pairs import MAX_NOTE_STEPS

TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7)}
STEPS_PER_BEAT = 4


def check_length(end: bool, bars: int | None, seconds: float | None) -> None:
    """``--end`` needs a length to end at: one-line error otherwise."""
    if end and bars is None and seconds is None:
        raise BadParameterError("--end: needs a length to end at (--bars N or --seconds S)")


def bars_for_seconds(seconds: float, bpm: float) -> int:
    """Whole bars of 4/4 that last at least ``seconds`` at ``bpm`` (at least one)."""
    if not seconds > 0 or not bpm > 0:
        raise BadParameterError(f"--seconds: must be a positive number, not {seconds}")
    beats = seconds * bpm / 60.0
    return max(1, math.ceil(beats / (STEPS_PER_BAR / STEPS_PER_BEAT) - 1e-9))


def tonic_of_scale(text: str) -> int:
    """The tonic pitch class of a ``--scale`` value such as ``F#:dorian`` (parsed already)."""
    name = text.strip().partition(":")[0].strip()
    pc = TONICS[name[0].upper()]
    return (pc + sum(a in "#♯" for a in name[1:]) - sum(a in "b♭" for a in name[1:])) % 12


def mode_of_scale(tonic: int, scale: frozenset[int]) -> str:
    """``"minor"`` when the scale has a minor third above the tonic and no major third."""
    return "minor" if (tonic + 3) % 12 in scale and (tonic + 4) % 12 not in scale else "major"


def tonic_pitches(tonic: int, pitch_range: tuple[int, int] | None) -> list[int]:
    """MIDI pitches of the tonic inside the range (the piano's without one), low to high."""
    lo, hi = pitch_range or (PIANO_LOW, PIANO_HIGH)
    return [p for p in range(max(lo, PIANO_LOW), min(hi, PIANO_HIGH) + 1) if p % 12 == tonic]


@dataclass(frozen=True)
class EndingPlan:
    """Where and what the final chord is; see the module docstring."""

    tonic: int  # pitch class
    mode: str  # "major" or "minor"
    bars: int
    pitch_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.bars < 1:
            raise BadParameterError(f"--bars: must be a positive number, not {self.bars}")
        if not tonic_pitches(self.tonic, self.pitch_range):
            lo, hi = self.pitch_range or (PIANO_LOW, PIANO_HIGH)
            raise BadParameterError(f"--end: --pitch-range {lo}-{hi} holds no tonic to end on")

    @property
    def chord_step(self) -> int:
        """First step of the last bar, where the final chord starts."""
        return (self.bars - 1) * STEPS_PER_BAR

    @property
    def end_step(self) -> int:
        """The step where the piece ends (the last bar's end)."""
        return self.bars * STEPS_PER_BAR

    @property
    def lowest_tonic(self) -> int:
        return tonic_pitches(self.tonic, self.pitch_range)[0]

    def in_final_bar(self, step: int) -> bool:
        return self.chord_step <= step < self.end_step

    def max_advance(self, step: int) -> int:
        """Longest rest from ``step``: up to the final chord, then up to the end."""
        return (self.chord_step if step < self.chord_step else self.end_step) - step

    def note_durations(self, step: int) -> range:
        """Durations a note starting at ``step`` may take: end by the chord; the chord to the end."""
        if step >= self.chord_step:
            return range(self.end_step - step, self.end_step - step + 1)
        return range(1, min(self.chord_step - step, MAX_NOTE_STEPS) + 1)

    def allowed_pitches(self, step: int, low: int) -> np.ndarray:
        """``(128,)`` bool: pitches a note starting at ``step`` may take for the ending.

        ``low`` is the lowest pitch already started at ``step`` (128: none). Before
        the last bar: any. In it: only on its first step, tones of the tonic triad
        that leave room below for a tonic (or the tonic itself).
        """
        pitches = np.arange(128)
        if step < self.chord_step:
            return np.ones(128, dtype=bool)
        if step != self.chord_step:
            return np.zeros(128, dtype=bool)
        lo, hi = self.pitch_range or (PIANO_LOW, PIANO_HIGH)
        triad = [(self.tonic + i) % 12 for i in TRIADS[self.mode]]
        ok = np.isin(pitches % 12, triad) & (pitches >= lo) & (pitches <= hi) & (pitches < low)
        return ok & ((pitches % 12 == self.tonic) | (pitches > self.lowest_tonic))

    def may_leave(self, step: int, low: int) -> bool:
        """May the row advance past ``step`` (SEP), given the lowest pitch started there?

        At the final chord only once its lowest note is a tonic; elsewhere always.
        """
        return step != self.chord_step or (low < 128 and low % 12 == self.tonic)
