"""Token grammars as masks: what may come next, per row, so every output decodes.

:class:`PairGrammar` follows the pairs encoding strictly (a pitch or SEP is
followed by a duration; notes of one step go from high to low pitch; no special
token mid-piece) and adds the musical rules (scale, pitch range, polyphony).
:class:`~tunesmith.generation.token_kinds.TokenKindGrammar` is the looser rule set for miditok
encodings; a music rule's contract is :class:`Rule`.

A grammar starts as one row fed the prompt; :meth:`reorder` (beam search, through
:class:`tunesmith.generation.sequences.Sequences`) makes it as many rows as it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.pitch_masks import pitch_allowed
from tunesmith.generation.token_kinds import TokenKindGrammar
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.tokenization.pairs import (
    DUR_OFFSET,
    EOS,
    MAX_NOTE_STEPS,
    MAX_WAIT_STEPS,
    MIDDLE,
    PITCH_OFFSET,
    SEP,
    PairTokenizer,
)


class Rule(Protocol):
    """A music rule as a mask over the pairs grammar's next token, row by row.

    ``restrict`` gets the grammar (read its per-row state: ``pending``, ``step``,
    ``low``, ``sounding``, ``elapsed``, ``new_notes``) and the ``(B, V)`` mask so
    far (a numpy array), and returns it narrowed (copy before writing into it). A rule must leave
    each row something legal that leads on to the length target. A rule with its
    own per-row state moves it in ``reorder`` and advances it in ``update``, called
    after the grammar took the tokens.
    """

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray: ...

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None: ...

    def reorder(self, rows: np.ndarray) -> None: ...


class StatelessRule:
    """Base of rules that read only the grammar's state."""

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        return mask

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None:
        return None

    def reorder(self, rows: np.ndarray) -> None:
        return None


class PairGrammar:
    """The pairs encoding's grammar plus scale, pitch-range, polyphony and repeat masks."""

    # Per-row state, one entry per row: what reorder() moves.
    ROW_STATE = ("last_pitch", "repeats", "pending", "step", "low", "new_notes", "elapsed")

    def __init__(
        self, tokenizer: PairTokenizer, cfg: GenerationConfig, rules: Sequence[Rule] = ()
    ) -> None:
        V = tokenizer.vocab_size
        self.rules = list(rules)
        ids = np.arange(V)
        self.pitch_ok = pitch_allowed(tokenizer, cfg)  # (V,)
        self.pitch_of = np.where(tokenizer.kinds == TokenKind.PITCH, ids - PITCH_OFFSET, 1000)
        self.note_dur = (ids > DUR_OFFSET) & (ids <= DUR_OFFSET + MAX_NOTE_STEPS)
        self.wait_dur = (ids > DUR_OFFSET) & (ids <= DUR_OFFSET + MAX_WAIT_STEPS)
        self.sep = ids == SEP
        self.sep_eos = np.isin(ids, [SEP, EOS])
        self.table = self._mask_table()
        self._table_rows = [self.table[i : i + 1] for i in range(len(self.table))]  # (1, V) views
        self.stop_at_eos = cfg.stop_at_eos
        # EOS once the row has a new note and this much progress (notes, or steps of bars).
        self.by_bars = cfg.bars is not None
        self.eos_from = cfg.earliest_end(STEPS_PER_BAR)
        self.max_polyphony = cfg.max_polyphony
        self.max_repeat = cfg.max_repeat
        self.last_pitch = np.full(1, -1, dtype=np.int64)  # pitch of the latest note
        self.repeats = np.zeros(1, dtype=np.int64)  # notes in a row of that pitch
        self.pending = np.full(1, -1, dtype=np.int64)  # pitch id or SEP awaiting a duration
        self.step = np.zeros(1, dtype=np.int64)  # current grid step
        self.low = np.full(1, 1000, dtype=np.int64)  # lowest pitch started at this step
        self.new_notes = np.zeros(1, dtype=np.int64)
        self.elapsed = np.zeros(1, dtype=np.int64)  # steps advanced since the prompt
        # Per row, (end step, pitch) of every sounding note.
        self.sounding: list[list[tuple[int, int]]] = [[]]

    def feed_prompt(self, ids: list[int]) -> None:
        """Take the prompt's state; counters of new notes and steps start at zero.

        A fill-in prompt's ``MIDDLE`` starts the middle's own time, as a piece starts:
        nothing sounds, no chord is open, no pitch repeats (the suffix before it is over).
        """
        for t in ids:
            if t == MIDDLE:
                self._restart(0)
            self._advance(0, int(t))
        self.new_notes[:] = 0
        self.elapsed[:] = 0

    def _restart(self, r: int) -> None:
        self.last_pitch[r], self.repeats[r], self.pending[r] = -1, 0, -1
        self.step[r], self.low[r], self.sounding[r] = 0, 1000, []

    def _advance(self, r: int, t: int) -> None:
        if self.pending[r] >= 0 and t >= DUR_OFFSET:
            dur = t - DUR_OFFSET
            if self.pending[r] == SEP:
                self.step[r] += dur
                self.elapsed[r] += dur
                self.low[r] = 1000
                self.sounding[r] = [n for n in self.sounding[r] if n[0] > self.step[r]]
            else:
                pitch = self.pending[r] - PITCH_OFFSET
                self.repeats[r] = self.repeats[r] + 1 if pitch == self.last_pitch[r] else 1
                self.low[r] = self.last_pitch[r] = pitch
                self.sounding[r].append((int(self.step[r] + dur), int(pitch)))
                self.new_notes[r] += 1
            self.pending[r] = -1
        elif t == SEP or PITCH_OFFSET <= t < DUR_OFFSET:
            self.pending[r] = t

    def _mask_table(self) -> np.ndarray:
        """``(2 + 129 * 4, V)`` bool: every mask a row can need, looked up rather than built.

        Row 0: a rest's duration; 1: a note's duration; ``2 + 4 * low + 2 * full + eos``:
        a pitch below ``low`` (128: any), none if polyphony is ``full``, SEP, EOS if ``eos``.
        """
        lows = np.arange(129)[:, None]  # pitches below 128 = all
        below = self.pitch_ok & (self.pitch_of < lows)  # (129, V)
        pitch = np.stack([below, np.zeros_like(below)], 1)  # (129, full, V)
        tail = np.stack([self.sep, self.sep_eos])  # (eos, V)
        after_pair = (pitch[:, :, None] | tail).reshape(-1, len(self.sep))
        table = np.concatenate([self.wait_dur[None], self.note_dur[None], after_pair])
        table.flags.writeable = False  # rows are handed out as views: rules copy to narrow
        return table

    def allowed(self) -> np.ndarray:
        """``(B, V)`` bool of the ids each row may produce next: one table lookup."""
        if len(self.pending) == 1:  # every search but beam: plain ints and a prebuilt view
            mask = self._table_rows[self._table_row(0)]
        else:
            rows = [self._table_row(r) for r in range(len(self.pending))]
            mask = self.table[rows]
        if self.max_repeat is not None:
            mask = self._no_more_repeats(mask, self.max_repeat)
        for rule in self.rules:
            mask = rule.restrict(self, mask)
        return mask

    def _no_more_repeats(self, mask: np.ndarray, max_repeat: int) -> np.ndarray:
        """``mask`` without a further note of a pitch already repeated ``max_repeat`` times."""
        if len(self.pending) == 1:  # plain comparisons: the usual single row
            if self.repeats[0] < max_repeat or self.pending[0] >= 0:
                return mask
            stuck = np.zeros(1, dtype=np.int64)
        else:
            stuck = np.flatnonzero((self.repeats >= max_repeat) & (self.pending < 0))
            if not len(stuck):
                return mask
        mask = mask.copy()
        mask[stuck, PITCH_OFFSET + self.last_pitch[stuck]] = False
        return mask

    def _table_row(self, r: int) -> int:
        """Row ``r``'s mask in :meth:`_mask_table`."""
        p = int(self.pending[r])
        if p == SEP:
            return 0
        if p >= 0:
            return 1
        full = self.max_polyphony is not None and len(self.sounding[r]) >= self.max_polyphony
        # EOS only once the row has added a note (an empty continuation helps nobody) and
        # come eos_after of the way (a piece asked for 256 notes that ends after 3 is none).
        progress = self.elapsed[r] if self.by_bars else self.new_notes[r]
        eos = self.stop_at_eos and int(self.new_notes[r]) > 0 and int(progress) >= self.eos_from
        return 2 + 4 * min(int(self.low[r]), 128) + 2 * full + eos

    def next_is_duration(self) -> np.ndarray:
        return self.pending >= 0

    def update(self, tokens: np.ndarray) -> None:
        for r, t in enumerate(tokens.tolist()):
            self._advance(r, t)
        for rule in self.rules:
            rule.update(self, tokens)

    def reorder(self, rows: np.ndarray) -> None:
        """Row i continues row ``rows[i]``; as many rows as ``rows`` has."""
        for name in self.ROW_STATE:
            setattr(self, name, getattr(self, name)[rows])  # indexing copies
        self.sounding = [list(self.sounding[r]) for r in rows.tolist()]
        for rule in self.rules:
            rule.reorder(rows)

    def progress(self, cfg: GenerationConfig) -> np.ndarray:
        return self.new_notes if cfg.bars is None else self.elapsed

    def done(self, cfg: GenerationConfig) -> np.ndarray:
        """Rows that reached the length target on a complete token pair."""
        complete = self.pending < 0
        if cfg.bars is not None:
            return complete & (self.elapsed >= cfg.bars * STEPS_PER_BAR)
        return complete & (self.new_notes >= (cfg.notes or 0))


Grammar = PairGrammar | TokenKindGrammar


def make_grammar(
    tokenizer: Tokenizer, cfg: GenerationConfig, rules: Sequence[Rule] = ()
) -> Grammar:
    """The grammar of the tokenizer's encoding, for one row; ``rules`` need the pairs encoding."""
    if isinstance(tokenizer, PairTokenizer):
        return PairGrammar(tokenizer, cfg, rules)
    if rules:
        raise BadParameterError(
            "chords, endings, infilling and the copy guard need a model with the pairs encoding"
        )
    return TokenKindGrammar(tokenizer, cfg)
