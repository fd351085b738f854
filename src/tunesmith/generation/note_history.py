"""Each row's notes so far, the prompt's first: what the copy and repetition rules read.

The pairs grammar feeds the prompt to itself, not to its rules, so a rule that needs
the notes before the first new one builds a :class:`NoteHistory` from the prompt's
ids; it then takes each token the grammar takes (``update``) and follows beam
search's rows (``reorder``). A note is complete once its duration token is taken;
rests (SEP and its duration) add no note, as the memorisation index counts notes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.tokenization.pairs import DUR_OFFSET, N_DURATIONS, PITCH_OFFSET, SEP


class NoteHistory:
    """Per row, the pitch and duration of each note in grid order; ``keep`` bounds how many."""

    def __init__(self, prompt_ids: Sequence[int], keep: int | None = None) -> None:
        self.keep = keep
        self.pitches: list[list[int]] = [[]]
        self.durs: list[list[int]] = [[]]
        self._pending = [-1]  # per row: the pitch token awaiting its duration, SEP or -1
        for t in prompt_ids:
            self._take(0, int(t))

    def _take(self, r: int, t: int) -> None:
        if t == SEP or PITCH_OFFSET <= t < DUR_OFFSET:
            self._pending[r] = t
            return
        if DUR_OFFSET <= t < DUR_OFFSET + N_DURATIONS and self._pending[r] >= PITCH_OFFSET:
            self.pitches[r].append(self._pending[r] - PITCH_OFFSET)
            self.durs[r].append(t - DUR_OFFSET)
            if self.keep is not None and len(self.pitches[r]) > 2 * self.keep:
                del self.pitches[r][: -self.keep], self.durs[r][: -self.keep]
        self._pending[r] = -1

    def update(self, tokens: np.ndarray) -> None:
        """Take one token per row."""
        for r, t in enumerate(tokens.tolist()):
            self._take(r, t)

    def reorder(self, rows: np.ndarray) -> None:
        """Row i continues row ``rows[i]``."""
        picks = rows.tolist()
        self.pitches = [list(self.pitches[r]) for r in picks]
        self.durs = [list(self.durs[r]) for r in picks]
        self._pending = [self._pending[r] for r in picks]

    @property
    def rows(self) -> int:
        return len(self.pitches)


def forbid(mask: np.ndarray, bans: dict[int, list[int]]) -> np.ndarray:
    """``mask`` with ``bans`` (row -> token ids) set False, except where a row would have nothing left.

    A rule must leave every row something legal; a ban that would empty a row (another
    rule already narrowed it to these ids) yields.
    """
    if not bans:
        return mask
    out = mask.copy()
    for r, ids in bans.items():
        row = out[r].copy()
        row[ids] = False
        if row.any():
            out[r] = row
    return out
