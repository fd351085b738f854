"""The ``pairs`` tokenizer: the original project's encoding (musicautobot's), the default.

A 16th-note grid; each note is a ``(pitch, duration)`` pair; notes that start on
one step are written from the highest pitch to the lowest; each advance of time
is ``SEP`` followed by a duration (in steps). Ids::

    0 PAD  1 BOS  2 EOS  3 SEP  | 4..131 pitch 0..127 | 132..292 duration 0..160 | padding

A file starts with ``BOS PAD`` as in the original. With ``infill=True`` (tokenizer.json
version 2, ``"infill": true``) four specials follow the padding, so ids 0..295 keep
their meaning: ``296 GAP  297 SUFFIX  298 MIDDLE  299 FILL_END`` (vocab 304); the
fill-in-the-middle layout is in :mod:`tunesmith.data.infill` and docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import symusic

from tunesmith.tokenization.base import Tokenizer, TokenKind, pad_to_multiple
from tunesmith.tokenization.midi_io import DEFAULT_BPM, grid_notes, score_from_grid

PAD, BOS, EOS, SEP = 0, 1, 2, 3
PITCH_OFFSET = 4
N_PITCHES = 128
DUR_OFFSET = PITCH_OFFSET + N_PITCHES  # 132
N_DURATIONS = 161  # durations 0..160 steps, as in the original vocabulary
MAX_NOTE_STEPS = 128  # notes are capped at 8 bars of 4/4
MAX_WAIT_STEPS = N_DURATIONS - 1  # a longer rest is written as several SEPs
BASE_VOCAB = 296  # ids of the original encoding, padding included
GAP, SUFFIX, MIDDLE, FILL_END = BASE_VOCAB, BASE_VOCAB + 1, BASE_VOCAB + 2, BASE_VOCAB + 3
INFILL_SPECIALS = {GAP: "GAP", SUFFIX: "SUFFIX", MIDDLE: "MIDDLE", FILL_END: "FILL_END"}


class PairTokenizer(Tokenizer):
    """The default ``pairs`` encoding; ``infill`` adds the fill-in specials (module docstring).

    Named ``seed`` before 0.2 (files written then say ``"type": "seed"`` and still load).
    """

    name = "pairs"
    pad_id, bos_id, eos_id, sep_id = PAD, BOS, EOS, SEP

    def __init__(self, infill: bool = False) -> None:
        n = DUR_OFFSET + N_DURATIONS
        self.infill = bool(infill)
        self._vocab_size = pad_to_multiple(FILL_END + 1) if infill else pad_to_multiple(n)
        kinds = np.full(self._vocab_size, TokenKind.OTHER, dtype=np.uint8)
        kinds[[PAD, BOS, EOS]] = TokenKind.SPECIAL
        kinds[SEP] = TokenKind.SEPARATOR
        kinds[PITCH_OFFSET:DUR_OFFSET] = TokenKind.PITCH
        kinds[DUR_OFFSET:n] = TokenKind.DURATION
        if infill:
            kinds[list(INFILL_SPECIALS)] = TokenKind.SPECIAL
        self._kinds = kinds

    def with_infill(self) -> PairTokenizer:
        return PairTokenizer(infill=True)

    def without_infill(self) -> PairTokenizer:
        return PairTokenizer()

    @property
    def prefix(self) -> list[int]:
        return [BOS, PAD]

    @staticmethod
    def pitch_id(pitch: int | np.ndarray) -> Any:
        return PITCH_OFFSET + pitch

    @staticmethod
    def duration_id(steps: int | np.ndarray) -> Any:
        return DUR_OFFSET + steps

    def encode(self, score: symusic.Score) -> list[int]:
        return self.encode_grid(grid_notes(score)).tolist()

    def encode_grid(self, notes: np.ndarray, prefix: bool = True) -> np.ndarray:
        """Ids of ``(step, pitch, dur)`` rows ordered as :func:`grid_notes` orders them."""
        notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
        head = np.array(self.prefix if prefix else [], dtype=np.int64)
        if len(notes) == 0:
            return head
        steps = notes[:, 0]
        pairs = np.stack(
            [self.pitch_id(notes[:, 1]), self.duration_id(np.minimum(notes[:, 2], MAX_NOTE_STEPS))],
            1,
        )
        # One group per distinct onset step; the wait before a group is the gap to
        # the previous onset (to 0 for the first), written as ceil(wait/160) SEPs.
        first = np.concatenate([[True], steps[1:] != steps[:-1]])
        group_start = np.flatnonzero(first)
        group_step = steps[group_start]
        waits = np.diff(np.concatenate([[0], group_step]))
        n_seps = -(-waits // MAX_WAIT_STEPS)  # 0 where wait == 0
        # Rows: every group's SEP rows, then its note rows.
        group_of_note = np.cumsum(first) - 1
        seps_before = np.cumsum(n_seps)  # SEP rows up to and including each group
        total_rows = len(notes) + int(seps_before[-1])
        rows = np.empty((total_rows, 2), dtype=np.int64)
        rows[np.arange(len(notes)) + seps_before[group_of_note]] = pairs
        if seps_before[-1]:
            g = np.repeat(np.arange(len(group_start)), n_seps)  # group of each SEP row
            k = np.arange(len(g)) - np.repeat(seps_before - n_seps, n_seps)  # index within group
            last = k == n_seps[g] - 1
            dur = np.where(last, waits[g] - MAX_WAIT_STEPS * (n_seps[g] - 1), MAX_WAIT_STEPS)
            sep_rows = group_start[g] + (seps_before - n_seps)[g] + k
            rows[sep_rows, 0] = SEP
            rows[sep_rows, 1] = self.duration_id(dur)
        return np.concatenate([head, rows.reshape(-1)])

    def decode_grid(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """``(step, pitch, dur)`` rows from any ids, skipping what does not parse.

        A pitch or SEP must be followed by a duration, else it is dropped; a lone
        duration is dropped; decoding ends at the first EOS.
        """
        out: list[tuple[int, int, int]] = []
        step = 0
        pending: int | None = None  # a pitch id or SEP waiting for its duration
        for raw in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if raw == EOS:
                break
            if PITCH_OFFSET <= raw < DUR_OFFSET or raw == SEP:
                pending = raw
                continue
            if DUR_OFFSET <= raw < DUR_OFFSET + N_DURATIONS and pending is not None:
                dur = raw - DUR_OFFSET
                if pending == SEP:
                    step += dur
                elif dur > 0:
                    out.append((step, pending - PITCH_OFFSET, dur))
            pending = None
        return np.array(out, dtype=np.int32).reshape(-1, 3)

    def decode(self, ids: list[int] | np.ndarray, bpm: float | None = None) -> symusic.Score:
        return score_from_grid(self.decode_grid(ids), bpm=bpm or DEFAULT_BPM)

    def token_str(self, token_id: int) -> str:
        if token_id in (PAD, BOS, EOS, SEP):
            return ("PAD", "BOS", "EOS", "SEP")[token_id]
        if PITCH_OFFSET <= token_id < DUR_OFFSET:
            return f"Pitch_{token_id - PITCH_OFFSET}"
        if DUR_OFFSET <= token_id < DUR_OFFSET + N_DURATIONS:
            return f"Duration_{token_id - DUR_OFFSET}"
        if self.infill and token_id in INFILL_SPECIALS:
            return INFILL_SPECIALS[token_id]
        return f"Unused_{token_id}"

    def to_dict(self) -> dict[str, Any]:
        if not self.infill:
            return {"type": "pairs", "version": 1, "vocab_size": self.vocab_size}
        return {"type": "pairs", "version": 2, "infill": True, "vocab_size": self.vocab_size}
