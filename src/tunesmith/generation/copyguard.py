"""A copy guard: which next notes would make a run copied from the training files too long.

Runs are measured as :mod:`tunesmith.evaluation.memorisation` measures them: a
run of L notes (in grid order) copies L consecutive notes of one training file
when the L durations and the L - 1 pitch intervals between neighbours are equal.
Onsets play no part (a copy at another tempo counts), nor does transposition.

So a run longer than N notes ends at the next note exactly when the last N notes
so far equal, in that sense, N consecutive notes of a file that go on with one
more note in the same file, and the next note repeats that note's interval and
duration. :class:`CopyGuard` hashes every such window of N training notes once,
sorted; per generated note it hashes the last N notes (N integer steps), finds
the matching windows by binary search, checks them on the notes (so a hash
collision cannot forbid a note that copies nothing) and returns the
``(pitch, duration)`` pairs that would go on copying them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.generation.training_notes import NoteArrays

_MASK = (1 << 64) - 1
_BASE = 0x9E3779B97F4A7C15  # odd 64-bit multiplier; hashes wrap mod 2**64
Pair = tuple[int, int]  # (MIDI pitch, duration in steps) of a candidate note


def _note_tokens(pitches: np.ndarray, durs: np.ndarray) -> np.ndarray:
    """Per note: ``(interval + 128) << 32 | duration`` (interval 0 for a file's first note)."""
    interval = np.zeros(len(pitches), dtype=np.int64)
    interval[1:] = pitches[1:].astype(np.int64) - pitches[:-1]
    return ((interval + 128).astype(np.uint64) << np.uint64(32)) | durs.astype(np.uint64)


def _hash_windows(tokens: np.ndarray, durs: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Hash of the n-note window at each start: its first duration, then n - 1 note tokens."""
    h = durs[starts].astype(np.uint64)
    base = np.uint64(_BASE)
    for t in range(1, n):
        h = h * base + tokens[starts + t]
    return h


def _hash_tail(pitches: Sequence[int], durs: Sequence[int]) -> int:
    """The same hash as :func:`_hash_windows` for one window, in plain ints (faster for one)."""
    h = int(durs[0])
    for t in range(1, len(durs)):
        token = ((int(pitches[t]) - int(pitches[t - 1]) + 128) << 32) | int(durs[t])
        h = (h * _BASE + token) & _MASK
    return h


class CopyGuard:
    """Forbids the next notes that would extend a copied run beyond ``max_copy`` notes."""

    def __init__(self, index: NoteArrays, max_copy: int) -> None:
        if max_copy < 1:
            raise BadParameterError(f"--max-copy: the guard needs a positive run, not {max_copy}")
        self.max_copy = n = max_copy
        self._pitches = index.pitches.astype(np.int64)
        self._durs = index.durs.astype(np.int64)
        file_of = np.repeat(np.arange(len(index.names)), np.diff(index.offsets))
        # Windows of n notes whose next note lies in the same file.
        count = max(len(file_of) - n, 0)
        starts = np.flatnonzero(file_of[:count] == file_of[n : n + count]).astype(np.int64)
        tokens = _note_tokens(self._pitches, self._durs)
        hashes = _hash_windows(tokens, self._durs, starts, n)
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._starts = hashes[order], starts[order]
        self._offsets = np.arange(n)

    @property
    def n_windows(self) -> int:
        """Training windows that a run can extend (one per note followed by ``max_copy`` more)."""
        return len(self._starts)

    def forbidden_next(self, pitches: Sequence[int], durs: Sequence[int]) -> set[Pair]:
        """``(pitch, duration)`` of every next note that would copy more than ``max_copy`` notes.

        ``pitches``/``durs`` are the notes so far in grid order (only the last
        ``max_copy`` are read); pass only the notes a run may include, e.g. leave
        out a prompt that may itself be a copy. Pitches outside 0-127 are left out.
        """
        n = self.max_copy
        if len(pitches) < n:
            return set()
        tail_p = np.asarray(pitches[-n:], dtype=np.int64)
        tail_d = np.asarray(durs[-n:], dtype=np.int64)
        key = np.uint64(_hash_tail(tail_p, tail_d))
        lo = int(np.searchsorted(self._hashes, key, side="left"))
        hi = int(np.searchsorted(self._hashes, key, side="right"))
        if lo == hi:
            return set()
        hits = self._starts[lo:hi]
        window = hits[:, None] + self._offsets  # (hits, n) training note positions
        same = (self._durs[window] == tail_d).all(1)
        shape = self._pitches[window] - self._pitches[window[:, :1]]  # transposition-free
        same &= (shape == tail_p - tail_p[0]).all(1)
        nxt = hits[same] + n
        pitch = int(tail_p[-1]) + self._pitches[nxt] - self._pitches[nxt - 1]
        ok = (pitch >= 0) & (pitch < 128)
        return set(zip(pitch[ok].tolist(), self._durs[nxt][ok].tolist(), strict=True))

    def would_copy(self, pitches: Sequence[int], durs: Sequence[int], pitch: int, dur: int) -> bool:
        """Would the note ``(pitch, dur)`` after these notes end a copied run of ``max_copy + 1``?"""
        return (pitch, dur) in self.forbidden_next(pitches, durs)


def forbidden_durations(forbidden: set[Pair], pitch: int) -> list[int]:
    """The durations a note of ``pitch`` may not take (for the mask after its pitch token)."""
    return sorted(d for p, d in forbidden if p == pitch)


def blocked_pitches(forbidden: set[Pair], durations: Sequence[int]) -> list[int]:
    """Pitches whose every duration in ``durations`` is forbidden (for the mask on pitch tokens).

    Masking these keeps the decoder from choosing a pitch it could not finish.
    """
    allowed = set(durations)
    per_pitch: dict[int, set[int]] = {}
    for p, d in forbidden:
        if d in allowed:
            per_pitch.setdefault(p, set()).add(d)
    return sorted(p for p, ds in per_pitch.items() if len(ds) == len(allowed))
