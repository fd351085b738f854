"""Each row's clock and the notes of its recent bars: what the bar-repeat rules compare.

:class:`BarNotes` follows the tokens a row takes and keeps, per 4/4 bar, its notes as
(position in the bar, pitch, duration) in token order, the prompt's included. Time is
:mod:`tunesmith.tokenization.bar_clock`'s (one definition of how tokens advance it,
fill-in-the-middle layout included). ``repeat_bias``
(:mod:`~tunesmith.generation.repeat_bias`) and ``repeat_bars``
(:mod:`~tunesmith.generation.bar_repeat`) both ask it which token would continue an
earlier bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tunesmith.tokenization.bar_clock import ClockState
from tunesmith.tokenization.bar_clock import step as clock_step
from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.tokenization.pairs import (
    DUR_OFFSET,
    MAX_WAIT_STEPS,
    N_DURATIONS,
    PITCH_OFFSET,
    SEP,
)

if TYPE_CHECKING:
    from tunesmith.generation.grammar import PairGrammar

BARS_BACK = (1, 2, 4, 8)  # the bars a piece repeats: the last one, and at phrase distances
Note = tuple[int, int, int]  # (position in the bar, pitch, duration)


class BarNotes:
    """One row's clock and the notes of its recent bars, from the tokens it takes."""

    def __init__(self) -> None:
        self.clock = ClockState(0)
        self.pending = -1  # the pitch id or SEP awaiting a duration, else -1
        self.bars: dict[int, list[Note]] = {}  # bar index -> its notes in token order

    @property
    def step(self) -> int:
        """Grid step since the piece's start where the next note would start."""
        return self.clock.time

    def copy(self) -> BarNotes:
        out = BarNotes()
        out.clock, out.pending = self.clock, self.pending
        out.bars = {b: list(notes) for b, notes in self.bars.items()}
        return out

    def take(self, t: int) -> None:
        """Follow one token (specials and other ids leave the notes alone)."""
        before, self.clock = self.clock, clock_step(self.clock, t)
        if t == SEP or PITCH_OFFSET <= t < DUR_OFFSET:
            self.pending = t
            return
        if DUR_OFFSET <= t < DUR_OFFSET + N_DURATIONS and self.pending >= 0:
            if self.pending == SEP:
                bar = self.step // STEPS_PER_BAR
                for old in [b for b in self.bars if b < bar - max(BARS_BACK)]:
                    del self.bars[old]
            else:
                bar, pos = divmod(before.time, STEPS_PER_BAR)
                note = (pos, self.pending - PITCH_OFFSET, t - DUR_OFFSET)
                self.bars.setdefault(bar, []).append(note)
        self.pending = -1

    def continuations(self, from_start: bool = False) -> set[int]:
        """The token ids that continue each earlier bar the current bar repeats so far.

        With ``from_start``, a bar with no note yet repeats every earlier bar whose first
        note is still ahead (the ids that start them); otherwise it repeats none.
        """
        bar, pos = divmod(self.step, STEPS_PER_BAR)
        now = self.bars.get(bar, [])
        if not now and not from_start:
            return set()
        out: set[int] = set()
        for back in BARS_BACK:
            earlier = self.bars.get(bar - back, [])
            if not earlier or len(earlier) < len(now) or earlier[: len(now)] != now:
                continue
            if now or earlier[0][0] >= pos:
                out.update(self._next_token(bar - back, earlier[len(now) :], pos))
        return out

    def _next_token(self, bar: int, rest: list[Note], pos: int) -> list[int]:
        """The next token of earlier bar ``bar`` (``rest``: its notes not yet matched)."""
        target = rest[0][0] if rest else self._next_onset_after(bar)
        if self.pending == SEP:
            wait = target - pos
            return [DUR_OFFSET + wait] if 0 < wait <= MAX_WAIT_STEPS else []
        if self.pending >= 0:  # a pitch awaits its duration
            same = rest and rest[0][:2] == (pos, self.pending - PITCH_OFFSET)
            return [DUR_OFFSET + rest[0][2]] if same else []
        if rest and target == pos:
            return [PITCH_OFFSET + rest[0][1]]
        return [SEP] if target > pos else []

    def _next_onset_after(self, bar: int) -> int:
        """The first onset after bar ``bar``, in steps from that bar's start (the current
        bar has a note, so there is one)."""
        later = min(b for b, notes in self.bars.items() if b > bar and notes)
        return (later - bar) * STEPS_PER_BAR + self.bars[later][0][0]


class BarNotesRows:
    """Base of the rules that follow each row's :class:`BarNotes`: the prompt's first, then
    every token a row takes, rows moved with beam search's reorder."""

    def __init__(self, prompt_ids: Sequence[int]) -> None:
        first = BarNotes()
        for t in prompt_ids:
            first.take(int(t))
        self.rows = [first]

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None:
        for notes, t in zip(self.rows, tokens.tolist(), strict=True):
            notes.take(t)

    def reorder(self, rows: np.ndarray) -> None:
        self.rows = [self.rows[r].copy() for r in rows.tolist()]
