"""``--bars N --end`` as a mask over the pairs grammar's next token (the plan is in ``ending``).

The N bars are counted from the first bar line at or after the step where the
new notes begin (as the chord chart is; 0 without a prompt), so the final chord
falls on a bar line of the prompt's metre and the piece ends on one; after a
prompt that stops mid-bar, the rest of its bar comes on top of the N bars. The
grammar stops once N bars of time have passed since the prompt, which happens
only after the final chord has started (the grammar's ``done``); the chord is
written held to its bar's end.

EOS is never allowed: the piece ends where its bars do, not earlier.
"""

from __future__ import annotations

import numpy as np

from tunesmith.generation.chord_rule import (
    N_PITCHES,
    NOTES_BEFORE_BASS,
    StepNotes,
    duration_caps,
    first_bar_line,
    narrow_row,
    pitch_token_rows,
)
from tunesmith.generation.ending import EndingPlan
from tunesmith.generation.grammar import PairGrammar, StatelessRule
from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.tokenization.pairs import DUR_OFFSET, EOS, MAX_NOTE_STEPS, MAX_WAIT_STEPS, SEP


class EndingRule(StatelessRule):
    """Notes end by the final chord, no rest jumps it, and it is a tonic triad over a tonic."""

    def __init__(self, plan: EndingPlan, vocab_size: int, max_polyphony: int | None) -> None:
        self.plan = plan
        self.max_polyphony = max_polyphony
        self._origin: int | None = None
        self._caps = duration_caps(vocab_size)
        ids = np.arange(vocab_size)
        durations = (ids > DUR_OFFSET) & (ids <= DUR_OFFSET + MAX_WAIT_STEPS)
        # Row d: a duration of exactly d steps (the final chord's notes), any other token.
        self._exact = ~durations | (ids[None] == DUR_OFFSET + np.arange(STEPS_PER_BAR + 1)[:, None])
        chord = plan.chord_step
        lows = np.stack([plan.allowed_pitches(chord, low) for low in range(N_PITCHES + 1)])
        self._chord_rows = pitch_token_rows(lows, vocab_size)  # by the lowest pitch started
        tonics = np.arange(N_PITCHES) % 12 == plan.tonic
        self._tonic_only = pitch_token_rows(tonics[None], vocab_size)[0]
        self._no_pitch = pitch_token_rows(np.zeros((1, N_PITCHES), dtype=bool), vocab_size)[0]
        self._no_rest = ids != SEP
        self._rest = (ids == SEP) | (ids >= DUR_OFFSET)
        self._step_notes = StepNotes()

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        if self._origin is None:
            self._origin = first_bar_line(grammar)
        out = mask.copy()
        out[:, EOS] = False
        for r, (pending, step, low) in enumerate(
            zip(grammar.pending.tolist(), grammar.step.tolist(), grammar.low.tolist(), strict=True)
        ):
            local = step - self._origin
            if pending == SEP:
                allowed = self._rest_row(local)
            elif pending >= 0:
                allowed = self._note_row(local)
            else:
                allowed = self._choice_row(grammar, r, local, min(low, N_PITCHES))
            if allowed is not None:
                out[r] = narrow_row(out[r], allowed, self._rest)
        return out

    def _rest_row(self, local: int) -> np.ndarray | None:
        """Rest up to the final chord, then up to the end; after it anything (the grammar stops)."""
        if local >= self.plan.end_step:
            return None
        return self._caps[min(self.plan.max_advance(local), MAX_WAIT_STEPS)]

    def _note_row(self, local: int) -> np.ndarray | None:
        """A note ends by the final chord; the chord's notes last to the end of the bar."""
        plan = self.plan
        if local < plan.chord_step:
            return self._caps[min(plan.chord_step - local, MAX_NOTE_STEPS)]
        if local < plan.end_step:
            return self._exact[plan.end_step - local]
        return None

    def _choice_row(self, grammar: PairGrammar, r: int, local: int, low: int) -> np.ndarray | None:
        """At the final chord: triad tones over a tonic, leaving only over one; after it, rests."""
        plan = self.plan
        if local < plan.chord_step:
            return None
        if local > plan.chord_step:
            return self._no_pitch
        allowed = self._chord_rows[low]
        if not plan.may_leave(local, low):
            allowed = allowed & self._no_rest
            poly = self.max_polyphony
            last_voice = poly is not None and len(grammar.sounding[r]) >= poly - 1
            if last_voice or self._step_notes.count(grammar, r) >= NOTES_BEFORE_BASS:
                allowed = allowed & self._tonic_only  # the tonic now, before voices run out
        return allowed

    def reorder(self, rows: np.ndarray) -> None:
        self._step_notes.reorder(rows)
