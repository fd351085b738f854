"""The gap rule of infilling: a fill ends exactly at the gap's end, never before, never after.

A fill-in middle (:mod:`tunesmith.data.infill`) counts its time from the span's
first step; the grammar's ``elapsed`` is that time once the prompt's ``MIDDLE``
restarted it. Training wrote every middle note trimmed to end by the span's end
(and capped at :data:`MAX_NOTE_STEPS`, as every note is), and closed the middle
with rests adding up to exactly the gap, then ``FILL_END``. As masks:

- a rest's duration is at most the steps left in the gap;
- a note's duration is at most the steps left (so it never sounds into the suffix);
- ``EOS`` is never legal (the suffix ended the piece already);
- once the gap is used up, ``FILL_END`` is the only legal id.

While steps are left a rest of one step is always legal, so no row ever dead-ends;
the search stops on its length target (the gap, as ``bars``) exactly when the gap
is used up, and the forced ``FILL_END`` is added after it.
"""

from __future__ import annotations

import numpy as np

from tunesmith.generation.grammar import PairGrammar, StatelessRule
from tunesmith.tokenization.pairs import DUR_OFFSET, EOS, FILL_END, N_DURATIONS


class GapRule(StatelessRule):
    """Keep a fill inside a gap of ``gap`` grid steps and end it exactly there."""

    def __init__(self, gap: int, vocab_size: int) -> None:
        if gap < 1:
            raise ValueError(f"a gap needs at least one step, not {gap}")
        self.gap = gap
        ids = np.arange(vocab_size)
        is_duration = (ids >= DUR_OFFSET) & (ids < DUR_OFFSET + N_DURATIONS)
        # Steps of each duration id; -1 elsewhere, so any room admits the non-durations.
        self.steps = np.where(is_duration, ids - DUR_OFFSET, -1)
        self.not_eos = ids != EOS
        self.only_end = ids == FILL_END

    def room(self, grammar: PairGrammar) -> np.ndarray:
        """``(B,)`` steps left in the gap, row by row."""
        return self.gap - grammar.elapsed

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        room = self.room(grammar)[:, None]  # (B, 1)
        fits = (self.steps[None, :] <= room) & self.not_eos  # (B, V)
        out = mask & fits
        ended = (self.room(grammar) <= 0) & (grammar.pending < 0)
        if ended.any():
            out[ended] = self.only_end
        return out
