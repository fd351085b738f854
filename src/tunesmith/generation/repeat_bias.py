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

from tunesmith.generation.bar_notes import BarNotesRows
from tunesmith.generation.grammar import PairGrammar


class RepeatBias(BarNotesRows):
    """A rule that masks nothing and reshapes logits (:class:`~.processors.LogitsRule`)."""

    def __init__(self, bias: float, prompt_ids: Sequence[int]) -> None:
        super().__init__(prompt_ids)
        self.log_bias = math.log(bias)

    def adjust_logits(self, logits: np.ndarray) -> np.ndarray:
        boosts = [(r, sorted(row.continuations())) for r, row in enumerate(self.rows)]
        boosts = [(r, ids) for r, ids in boosts if ids]
        if not boosts:
            return logits
        out = logits.copy()
        for r, ids in boosts:
            out[r, ids] += np.float32(self.log_bias)  # -inf (masked later anyway) stays -inf
        return out

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        return mask
