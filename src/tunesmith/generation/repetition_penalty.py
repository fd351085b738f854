"""``repetition_penalty``: Hugging Face's penalty, on the pitches of each row's recent notes.

As ``transformers``' ``RepetitionPenaltyLogitsProcessor`` defines it: the logit of
every token already seen is divided by the penalty when positive and multiplied by
it when negative, so a penalty above 1 makes a seen token less likely whatever the
sign. "Seen" here means the pitch tokens of the row's last :data:`WINDOW_NOTES` notes
(the prompt's included), not every token of the window: durations and rests are
not penalised, since a piece repeats them by nature, and a bounded window of notes
keeps a long piece from penalising every pitch it ever played.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.generation import processors as P
from tunesmith.generation.grammar import PairGrammar
from tunesmith.generation.note_history import NoteHistory
from tunesmith.tokenization.pairs import PITCH_OFFSET

WINDOW_NOTES = 64  # about four bars of piano texture


class RepetitionPenalty:
    """A rule that masks nothing and reshapes logits (:class:`~.processors.LogitsRule`)."""

    def __init__(self, penalty: float, prompt_ids: Sequence[int]) -> None:
        self.penalty = penalty
        self.history = NoteHistory(prompt_ids, keep=WINDOW_NOTES)

    def seen(self, vocab_size: int) -> np.ndarray:
        """``(B, V)`` bool: the pitch tokens of each row's last :data:`WINDOW_NOTES` notes."""
        out = np.zeros((self.history.rows, vocab_size), dtype=bool)
        for r, pitches in enumerate(self.history.pitches):
            if pitches:
                out[r, [PITCH_OFFSET + p for p in set(pitches[-WINDOW_NOTES:])]] = True
        return out

    def adjust_logits(self, logits: np.ndarray) -> np.ndarray:
        return P.repetition_penalty(logits, self.seen(logits.shape[-1]), self.penalty)

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        return mask

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None:
        self.history.update(tokens)

    def reorder(self, rows: np.ndarray) -> None:
        self.history.reorder(rows)
