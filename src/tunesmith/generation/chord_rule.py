"""``--chords`` and ``--bass-root`` as a mask over the pairs grammar's next token.

Where the chart sits: its first chord starts at the first bar line at or after
the step where the new notes begin (the prompt's last onset; 0 without a prompt),
so the chart's bars are the prompt's bars and its strong beats are beats 1 and 3
of them. New notes before that bar line (the rest of the prompt's last bar)
follow only the scale and range. With ``--end`` the chart stops where the final
tonic chord starts (``stop_bars``): the ending decides the last bar.

What the mask does, from :mod:`tunesmith.generation.chords`: a note starting on
a strong beat is a chord tone; elsewhere a chord or key tone. With ``bass_root``
(:class:`~tunesmith.generation.chords.BassRule`) no rest jumps over a chord
change, a note held across a change stays above that chord's lowest playable
bass, and at a change the row may only rest or end once its lowest sounding
note is the chord's bass (after ``NOTES_BEFORE_BASS`` other notes there, only
the bass). A row the rule would leave with nothing legal (the
prompt's own notes below the bass, a full polyphony) may rest: decoding always
reaches its length.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tunesmith.generation.chords import BassRule, ChordChart
from tunesmith.generation.grammar import PairGrammar, StatelessRule
from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.tokenization.pairs import (
    DUR_OFFSET,
    EOS,
    MAX_NOTE_STEPS,
    MAX_WAIT_STEPS,
    PITCH_OFFSET,
    SEP,
)

N_PITCHES = 128
# Notes a row may start at a change (or the final chord) before the due bass must come:
# a model that would rather rest there is otherwise pushed down through every pitch.
NOTES_BEFORE_BASS = 3


def first_bar_line(grammar: PairGrammar) -> int:
    """The first bar line at or after the step where the new notes begin (every row's)."""
    start = int(grammar.step[0] - grammar.elapsed[0])
    return -(-start // STEPS_PER_BAR) * STEPS_PER_BAR


def pitch_token_rows(pitch_rows: np.ndarray, vocab_size: int) -> np.ndarray:
    """``(R, V)`` bool: pitch tokens as ``pitch_rows`` ``(R, 128)`` say, every other token True."""
    out = np.ones((len(pitch_rows), vocab_size), dtype=bool)
    out[:, PITCH_OFFSET : PITCH_OFFSET + N_PITCHES] = pitch_rows
    return out


def duration_caps(vocab_size: int) -> np.ndarray:
    """``(MAX_WAIT_STEPS + 1, V)`` bool: row c forbids the durations over c, allows the rest."""
    ids = np.arange(vocab_size)
    caps = np.arange(MAX_WAIT_STEPS + 1)[:, None]
    return ~((ids > DUR_OFFSET + caps) & (ids <= DUR_OFFSET + MAX_WAIT_STEPS))


class StepNotes:
    """Per row, how many notes the row has started at its current step (a rule's own state)."""

    def __init__(self) -> None:
        self._step = np.full(1, -1, dtype=np.int64)
        self._base = np.zeros(1, dtype=np.int64)

    def count(self, grammar: PairGrammar, r: int) -> int:
        """Notes row ``r`` started at its current step (the count restarts when time advances)."""
        if self._step[r] != grammar.step[r]:
            self._step[r], self._base[r] = grammar.step[r], grammar.new_notes[r]
        return int(grammar.new_notes[r] - self._base[r])

    def reorder(self, rows: np.ndarray) -> None:
        self._step, self._base = self._step[rows], self._base[rows]


def narrow_row(row: np.ndarray, allowed: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``row & allowed``; if that leaves nothing, ``row & fallback``; if still nothing, ``row``."""
    for keep in (allowed, fallback):
        narrowed = row & keep
        if narrowed.any():
            return narrowed
    return row


class ChordRule(StatelessRule):
    """The chart's pitches per step, and with ``bass_root`` its bass at every change."""

    def __init__(
        self,
        chart: ChordChart,
        key: Iterable[int] | None,
        legal: np.ndarray,
        vocab_size: int,
        bass_root: bool = False,
        stop_bars: int | None = None,
    ) -> None:
        """``legal``: ``(128,)`` bool of the pitches scale and range allow; ``key``: the key's
        pitch classes (None: any off the strong beats); ``stop_bars``: bars after which the
        chart stops (None: never)."""
        self.chart = chart
        self.bass = BassRule(chart, legal) if bass_root else None
        self.stop = None if stop_bars is None else stop_bars * STEPS_PER_BAR
        self._origin: int | None = None
        self._pitch_rows = pitch_token_rows(chart.pitch_table(key), vocab_size)
        self._change_rows = self._bass_rows(key, vocab_size) if self.bass else None
        self._bass_only = pitch_token_rows(
            np.stack([np.arange(N_PITCHES) % 12 == s.chord.bass for s in chart.spans]), vocab_size
        )
        self._step_notes = StepNotes()
        self._caps = duration_caps(vocab_size)
        ids = np.arange(vocab_size)
        self._no_rest = (ids != SEP) & (ids != EOS)  # no rest, no end: the bass is still due
        self._rest = (ids == SEP) | (ids >= DUR_OFFSET)  # the way out when nothing else is legal

    def _bass_rows(self, key: Iterable[int] | None, vocab_size: int) -> np.ndarray:
        """Per span, the pitches a note starting at its change may take: chart and bass rules."""
        assert self.bass is not None
        key = None if key is None else frozenset(key)
        pcs = np.arange(N_PITCHES) % 12
        rows = []
        for span in self.chart.spans:
            tones = self.chart.allowed_pitch_classes(span.start, key) | {span.chord.bass}
            rows.append(np.isin(pcs, sorted(tones)) & self.bass.allowed_at_change(span.start))
        return pitch_token_rows(np.stack(rows), vocab_size)

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        if self._origin is None:
            self._origin = first_bar_line(grammar)
        out = mask.copy()
        for r, (pending, step) in enumerate(
            zip(grammar.pending.tolist(), grammar.step.tolist(), strict=True)
        ):
            local = step - self._origin
            if self.stop is not None and local >= self.stop:
                continue
            if pending >= 0:
                allowed = self._duration_row(grammar, r, pending, local)
            elif local >= 0:
                allowed = self._choice_row(grammar, r, local)
            else:
                continue
            if allowed is not None:
                out[r] = narrow_row(out[r], allowed, self._rest)
        return out

    def _duration_row(
        self, grammar: PairGrammar, r: int, pending: int, local: int
    ) -> np.ndarray | None:
        """A rest stops at the next change; a note ends where it would bury a bass."""
        if self.bass is None:
            return None
        if pending == SEP:
            to_change = -local if local < 0 else self.chart.steps_to_change(local)
            return self._caps[min(to_change, MAX_WAIT_STEPS)]
        return self._caps[self._longest_note(pending - PITCH_OFFSET, local)]

    def _longest_note(self, pitch: int, local: int) -> int:
        """Longest duration of ``pitch`` from chart step ``local`` (negative: before the chart)."""
        assert self.bass is not None
        if local >= 0:
            return self.bass.max_duration(local, pitch, MAX_NOTE_STEPS)
        if -local >= MAX_NOTE_STEPS:
            return MAX_NOTE_STEPS
        if pitch < self.bass.lowest_bass(0):
            return -local  # end at the chart's first change, where it would bury the bass
        return -local + self.bass.max_duration(0, pitch, MAX_NOTE_STEPS + local)

    def _choice_row(self, grammar: PairGrammar, r: int, local: int) -> np.ndarray:
        """The pitches the chart allows here; at a change, rest only over the chord's bass."""
        if self.bass is None or not self.chart.is_change(local):
            return self._pitch_rows[self.chart.mask_row(local)]
        span = self.chart.spans.index(self.chart.span_at(local))
        allowed = self._change_rows[span]  # type: ignore[index]
        lowest = min((p for _, p in grammar.sounding[r]), default=N_PITCHES)
        if not self.bass.may_leave(local, lowest):
            allowed = allowed & self._no_rest
            if self._step_notes.count(grammar, r) >= NOTES_BEFORE_BASS:
                allowed = allowed & self._bass_only[span]  # a model that would rest: the bass now
        return allowed

    def reorder(self, rows: np.ndarray) -> None:
        self._step_notes.reorder(rows)
