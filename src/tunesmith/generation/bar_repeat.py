"""``repeat_bars``: at some bar lines, the next bar repeats an earlier one note for note.

Real pieces repeat bars (an ostinato, a phrase that comes back), yet a sampled bar
is 10-20 tokens, so the model almost never draws all of them again even when it
favours each one. With a chance P > 0, each new bar of a row is planned as a repeat
(a coin drawn from the generation's seed and the bar's index, so the same seed gives
the same plan). Planned bars come in runs of ``run`` bars on average: after a
planned bar the next is planned with chance 1 - 1/run, after a free one with the
chance that keeps P the share of planned bars. So a phrase of several bars comes
back whole, and pieces differ in how much they repeat, as real pieces do (with
independent coins every piece repeated about P of its bars). In a planned bar the
only allowed tokens are those that repeat an earlier bar
(:data:`~.bar_notes.BARS_BACK` bars back) whose notes the bar so far equals, in
position, pitch and duration: at first every earlier bar whose first note is still
ahead, so the model picks which bar comes back by its first note; then that bar's
next notes and rests, up to the rest that leads into the next bar. When no such
token is left under the other rules (the copy guard, an ending, a chord chart, the
grammar), the bar goes on freely. Bars are 4/4 bars of the whole piece, the prompt's
included, so a motif of the prompt can come back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.generation.bar_notes import BarNotesRows
from tunesmith.generation.grammar import PairGrammar
from tunesmith.tokenization.midi_io import STEPS_PER_BAR


class BarRepeat(BarNotesRows):
    """The plan of repeated bars as a :class:`~tunesmith.generation.grammar.Rule`.

    The coins depend on the seed and the bar only: a piece is one row, and the rows of
    a beam are hypotheses of the same piece, which share its plan.
    """

    def __init__(
        self, chance: float, seed: int, prompt_ids: Sequence[int], run: float = 1.0
    ) -> None:
        super().__init__(prompt_ids)
        self.chance, self.seed = chance, seed
        self.given_up = [-1]  # per row: the bar it gave up repeating
        self._plan: list[bool] = []  # bars 0, 1, ... planned so far
        # Chances after a planned bar and after a free one; run 1: both P (independent coins).
        self._stay = max(chance, 1.0 - 1.0 / run)
        self._start = 1.0 if chance >= 1 else min(1.0, chance * (1 - self._stay) / (1 - chance))

    def planned(self, bar: int) -> bool:
        """Whether bar ``bar`` is to repeat an earlier bar (the seed's coins up to it)."""
        while len(self._plan) <= bar:
            coin = np.random.default_rng([self.seed, len(self._plan)]).random()
            after_planned = bool(self._plan) and self._plan[-1]
            self._plan.append(bool(coin < (self._stay if after_planned else self._start)))
        return self._plan[bar]

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        """Narrow each planned bar's row to the tokens that go on repeating."""
        out = mask
        for r, notes in enumerate(self.rows):
            bar = notes.step // STEPS_PER_BAR
            if bar == self.given_up[r] or not self.planned(bar):
                continue
            keep = np.zeros_like(mask[r])
            keep[sorted(notes.continuations(from_start=True))] = True
            keep &= mask[r]
            if not keep.any():
                self.given_up[r] = bar  # nothing repeats under the other rules: play on
                continue
            if out is mask:
                out = mask.copy()
            out[r] = keep
        return out

    def reorder(self, rows: np.ndarray) -> None:
        super().reorder(rows)
        self.given_up = [self.given_up[r] for r in rows.tolist()]
