"""``repeat_bias``: strengthen the model's own choice to repeat an earlier bar.

A repeated bar (the ``repeated_bar_rate`` of :mod:`tunesmith.evaluation.texture`)
needs every one of its 10-20 tokens to follow the earlier bar; even when the model
favours copying each token at 0.8, sampling breaks the copy almost surely. With a
bias B > 1: when the notes of the bar written so far, at least one, equal the first
notes of the bar :data:`BARS_BACK` bars back (note for note: position in the bar,
pitch, duration, in token order), the token that continues that earlier bar gets its
odds multiplied by B (``log B`` added to its logit, before temperature). The
continuation is the earlier bar's next note (its pitch, then its duration), else the
rest (SEP, then the duration) that reaches its next note's position; after the
earlier bar's last note, the rest that reaches the next note after it. Several
matching bars boost each one's next token. The first note of a bar is never pushed:
the model starts a repeat, the bias keeps it going. Bars are 4/4 bars of the whole
piece, the prompt's included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from tunesmith.generation.grammar import PairGrammar
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

BARS_BACK = (1, 2, 4, 8)  # the bars a piece repeats: the last one, and at phrase distances
Note = tuple[int, int, int]  # (position in the bar, pitch, duration)


class BarNotes:
    """One row's clock and the notes of its recent bars, from the tokens it takes.

    Time is :mod:`tunesmith.tokenization.bar_clock`'s (one definition of how tokens
    advance it, fill-in-the-middle layout included).
    """

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

    def continuations(self) -> set[int]:
        """The token ids that continue each earlier bar the current bar repeats so far."""
        bar, pos = divmod(self.step, STEPS_PER_BAR)
        now = self.bars.get(bar, [])
        if not now:
            return set()
        out: set[int] = set()
        for back in BARS_BACK:
            earlier = self.bars.get(bar - back, [])
            if len(earlier) >= len(now) and earlier[: len(now)] == now:
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


class RepeatBias:
    """A rule that masks nothing and reshapes logits (:class:`~.processors.LogitsRule`)."""

    def __init__(self, bias: float, prompt_ids: Sequence[int]) -> None:
        self.log_bias = math.log(bias)
        first = BarNotes()
        for t in prompt_ids:
            first.take(int(t))
        self.rows = [first]

    def adjust_logits(self, logits: torch.Tensor) -> torch.Tensor:
        boosts = [(r, sorted(row.continuations())) for r, row in enumerate(self.rows)]
        boosts = [(r, ids) for r, ids in boosts if ids]
        if not boosts:
            return logits
        out = logits.clone()
        for r, ids in boosts:
            out[r, ids] += self.log_bias  # -inf (masked later anyway) stays -inf
        return out

    def restrict(self, grammar: PairGrammar, mask: torch.Tensor) -> torch.Tensor:
        return mask

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None:
        for row, t in zip(self.rows, tokens.tolist(), strict=True):
            row.take(t)

    def reorder(self, rows: np.ndarray) -> None:
        self.rows = [self.rows[r].copy() for r in rows.tolist()]
