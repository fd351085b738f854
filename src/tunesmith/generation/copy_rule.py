"""``--max-copy N`` as a mask: no note may extend a run copied from the training files beyond N.

The :class:`~tunesmith.generation.copyguard.CopyGuard` says which ``(pitch, duration)``
pairs would go on copying after the last N notes. The grammar chooses a pitch, then its
duration, so :class:`CopyRule` forbids a pitch only when every duration of it would
copy, and otherwise forbids, once the pitch is chosen, the durations that would. A
rest is never forbidden. The notes before the first new one count (the prompt's
included), so a prompt taken from a training file cannot be continued into a longer copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.generation.copyguard import CopyGuard, Pair, blocked_pitches, forbidden_durations
from tunesmith.generation.grammar import PairGrammar
from tunesmith.generation.note_history import NoteHistory, forbid
from tunesmith.tokenization.pairs import DUR_OFFSET, MAX_NOTE_STEPS, PITCH_OFFSET

NOTE_DURATIONS = tuple(range(1, MAX_NOTE_STEPS + 1))  # what the grammar lets a note last
_CACHE_SIZE = 4096  # forbidden sets kept by tail; a pitch and its duration share one lookup


class CopyRule:
    """The copy guard as a :class:`~tunesmith.generation.grammar.Rule` over each row's notes."""

    def __init__(self, guard: CopyGuard, prompt_ids: Sequence[int]) -> None:
        self.guard = guard
        self.history = NoteHistory(prompt_ids, keep=guard.max_copy)
        self._cache: dict[tuple[tuple[int, ...], tuple[int, ...]], set[Pair]] = {}

    def _forbidden(self, r: int) -> set[Pair]:
        n = self.guard.max_copy
        pitches, durs = self.history.pitches[r], self.history.durs[r]
        if len(pitches) < n:
            return set()
        key = (tuple(pitches[-n:]), tuple(durs[-n:]))
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            found = self._cache[key] = self.guard.forbidden_next(key[0], key[1])
        return found

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        """Forbid the pitches that could only copy, then the durations that would."""
        bans: dict[int, list[int]] = {}
        for r, pending in enumerate(grammar.pending.tolist()):
            if 0 <= pending < PITCH_OFFSET:
                continue  # a rest's duration: rests never copy
            forbidden = self._forbidden(r)
            if not forbidden:
                continue
            if pending < 0:
                ids = [PITCH_OFFSET + p for p in blocked_pitches(forbidden, NOTE_DURATIONS)]
            else:
                ids = [
                    DUR_OFFSET + d for d in forbidden_durations(forbidden, pending - PITCH_OFFSET)
                ]
            if ids:
                bans[r] = ids
        return forbid(mask, bans)

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None:
        self.history.update(tokens)

    def reorder(self, rows: np.ndarray) -> None:
        self.history.reorder(rows)
