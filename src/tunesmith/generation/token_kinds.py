"""The looser grammar of miditok encodings: rules from token kinds alone."""

from __future__ import annotations

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.pitch_masks import pitch_allowed
from tunesmith.tokenization.base import Tokenizer, TokenKind


def _kind_allowed(tokenizer: Tokenizer, cfg: GenerationConfig, names: list[str]) -> np.ndarray:
    """``(V,)`` bool: real tokens that may appear mid-piece (EOS included), pitches as constrained."""
    kinds = tokenizer.kinds
    allowed = (kinds != TokenKind.SPECIAL) & (kinds != TokenKind.OTHER) | (
        np.arange(len(kinds)) == tokenizer.eos_id
    )
    # miditok's OTHER tokens (velocity, bar, position, tempo) are real tokens; only unused padding ids are not.
    real_other = np.array(
        [
            k == TokenKind.OTHER and not n.startswith("Unused")
            for k, n in zip(kinds, names, strict=True)
        ]
    )
    allowed |= real_other
    return allowed & (~(kinds == TokenKind.PITCH) | pitch_allowed(tokenizer, cfg))


class TokenKindGrammar:
    """Rules from token kinds alone: no PAD/BOS mid-piece, pitches as constrained."""

    def __init__(self, tokenizer: Tokenizer, cfg: GenerationConfig) -> None:
        if cfg.bars is not None or cfg.max_polyphony is not None:
            raise BadParameterError(
                f"--bars and --max-polyphony need the pairs tokenizer (this model uses {tokenizer.name})"
            )
        names = [tokenizer.token_str(i) for i in range(len(tokenizer.kinds))]
        allowed = _kind_allowed(tokenizer, cfg, names)
        self._allowed = allowed[None]  # (1, V): the same for every row
        no_eos = allowed.copy()
        no_eos[tokenizer.eos_id] = False
        self._allowed_no_eos = no_eos[None]
        self.stop_at_eos = cfg.stop_at_eos
        self.eos_from = max(1, cfg.earliest_end(0))  # a new note, as PairGrammar's (no bars)
        self._is_pitch = tokenizer.kinds == TokenKind.PITCH
        self._to_duration = np.array([n.startswith(("Pitch", "Velocity")) for n in names])
        self.last = np.full(1, -1, dtype=np.int64)
        self.new_notes = np.zeros(1, dtype=np.int64)
        self.eos_id = tokenizer.eos_id

    def feed_prompt(self, ids: list[int]) -> None:
        if ids:
            self.last[:] = ids[-1]

    def allowed(self) -> np.ndarray:
        """``(B, V)`` or ``(1, V)`` bool of the ids each row may produce next."""
        may_end = self.new_notes >= self.eos_from
        if self.stop_at_eos and may_end.all():
            return self._allowed
        if not self.stop_at_eos or not may_end.any():
            return self._allowed_no_eos
        return np.where(may_end[:, None], self._allowed, self._allowed_no_eos)

    def next_is_duration(self) -> np.ndarray:
        return (self.last >= 0) & self._to_duration[np.maximum(self.last, 0)]

    def update(self, tokens: np.ndarray) -> None:
        self.new_notes += self._is_pitch[tokens]
        self.last = tokens.copy()

    def reorder(self, rows: np.ndarray) -> None:
        """Row i continues row ``rows[i]``; as many rows as ``rows`` has."""
        self.last, self.new_notes = self.last[rows], self.new_notes[rows]

    def progress(self, cfg: GenerationConfig) -> np.ndarray:
        """``(B,)`` how far each row is, in the unit of the length target (notes)."""
        return self.new_notes

    def done(self, cfg: GenerationConfig) -> np.ndarray:
        return self.new_notes >= (cfg.notes or 0)
