"""``no_repeat_ngram_size``: Hugging Face's n-gram ban, applied to notes rather than tokens.

With n > 0, a row never plays n consecutive notes (pitch and duration; the prompt's
notes count) that it has played before. When a pitch is chosen, every earlier place
where the last n - 1 notes occurred is found, and the pitch that followed each is
banned: the pitch, not only the (pitch, duration) pair, so that greedy and beam search
cannot keep a loop going by changing a duration. A rest is never banned (rests are
not notes here, so a rest does not reset the ban either).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.generation.grammar import PairGrammar
from tunesmith.generation.note_history import NoteHistory, forbid
from tunesmith.tokenization.pairs import PITCH_OFFSET


def repeated_pitches(pitches: Sequence[int], durs: Sequence[int], n: int) -> list[int]:
    """Pitches that would make the last ``n - 1`` notes plus one a repeat of an earlier n-gram."""
    if n < 1 or len(pitches) < n:
        return []  # no earlier n-gram to repeat
    notes = np.asarray(pitches, dtype=np.int64) * 1024 + np.asarray(durs, dtype=np.int64)
    prefix = n - 1
    starts = len(notes) - prefix  # candidate n-grams start at 0 .. starts - 1
    match = np.ones(starts, dtype=bool)
    for k in range(prefix):
        match &= notes[k : k + starts] == notes[starts + k]
    follow = np.flatnonzero(match) + prefix
    return sorted(set(np.asarray(pitches, dtype=np.int64)[follow].tolist()))


class NoRepeatNgramRule:
    """Bans, per row, each pitch that would complete an n-gram of notes seen before."""

    def __init__(self, n: int, prompt_ids: Sequence[int]) -> None:
        self.n = n
        self.history = NoteHistory(prompt_ids)

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        bans = {}
        for r, pending in enumerate(grammar.pending.tolist()):
            if pending >= 0:
                continue  # a duration comes next
            found = repeated_pitches(self.history.pitches[r], self.history.durs[r], self.n)
            if found:
                bans[r] = [PITCH_OFFSET + p for p in found]
        return forbid(mask, bans)

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None:
        self.history.update(tokens)

    def reorder(self, rows: np.ndarray) -> None:
        self.history.reorder(rows)
