"""The one interface every tokenizer implements, and the kinds of token ids."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import symusic

from tunesmith.errors import BadParameterError


class TokenKind(IntEnum):
    """What a token id stands for; generation masks and the creativity bias use it."""

    SPECIAL = 0  # PAD, BOS, EOS (and SEP's role is SEPARATOR below)
    PITCH = 1
    DURATION = 2
    SEPARATOR = 3  # a rest / advance of time: SEP for seed, TimeShift/Rest for remi/tsd
    OTHER = 4  # anything else (velocity, bar, position, tempo, unused padding ids)


def pad_to_multiple(n: int, multiple: int = 8) -> int:
    """The smallest multiple of ``multiple`` that is >= n (matmul-friendly vocab sizes)."""
    return -(-n // multiple) * multiple


class Tokenizer(ABC):
    """Turns a symusic Score into token ids and back.

    ``decode`` never raises on any sequence of ints: invalid or out-of-order tokens
    are skipped, so whatever a model produces becomes a valid MIDI.
    """

    name: str
    pad_id: int
    bos_id: int
    eos_id: int

    # Set by each tokenizer's __init__; read through the properties below.
    _vocab_size: int
    _kinds: np.ndarray

    @property
    def vocab_size(self) -> int:
        """Number of ids, padded to a multiple of 8."""
        return self._vocab_size

    @property
    def kinds(self) -> np.ndarray:
        """``(vocab_size,)`` uint8 array of :class:`TokenKind` values."""
        return self._kinds

    @abstractmethod
    def encode(self, score: symusic.Score) -> list[int]:
        """Ids of the whole score, starting with the tokenizer's file prefix."""

    @abstractmethod
    def decode(self, ids: list[int] | np.ndarray, bpm: float | None = None) -> symusic.Score:
        """A valid one-track Score from any ids; ``bpm`` sets its tempo."""

    @abstractmethod
    def token_str(self, token_id: int) -> str:
        """A readable name of one id, e.g. ``Pitch_60``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer (saved beside checkpoints)."""

    @property
    def prefix(self) -> list[int]:
        """Ids a piece starts with (prompt-less generation starts from these)."""
        return [self.bos_id]

    def count_notes(self, ids: list[int] | np.ndarray) -> int:
        """How many notes ``ids`` hold (pitch tokens)."""
        arr = np.asarray(ids, dtype=np.int64)
        arr = arr[(arr >= 0) & (arr < self.vocab_size)]
        return int((self.kinds[arr] == TokenKind.PITCH).sum())

    def with_infill(self) -> Tokenizer:
        """This tokenizer plus the fill-in-the-middle specials (only ``seed`` has them)."""
        raise BadParameterError(
            f"--fim-rate: fill-in-the-middle needs the pairs tokenizer, not {self.name!r}"
        )

    def without_infill(self) -> Tokenizer:
        """This tokenizer without the fill-in specials (itself when it has none)."""
        return self

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))
