"""Does a generated piece copy its training data? The longest shared run of notes.

A piece is the sequence of its notes in grid order (step ascending, pitch
descending, as :func:`grid_notes` orders them). A *run* of L notes of one piece
equals L consecutive notes of another when their durations are equal and the
L - 1 pitch intervals between neighbours are equal: a copy in any transposition
counts, and so does one in another tempo or key signature of the grid.

:class:`MemorisationIndex` finds the longest such run between a piece and a
whole training set without comparing them note by note. It hashes every window
of k consecutive notes of the training set once (rolling polynomial hashes in
numpy, k = 8 and 4), sorts the hashes, and looks up the windows of a piece with
binary search. Matching windows that line up (same offset between the two
pieces, consecutive positions) chain into runs, so r chained windows are a run
of r + k - 1 notes; the best run is then checked on the notes themselves, which
makes the result exact whatever the hashes do. Runs shorter than the smallest
window are found in sets of the distinct 1-, 2- and 3-note windows.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from tunesmith.evaluation.metrics import as_grid
from tunesmith.generation.training_notes import FORMAT_VERSION, INDEX_FILE, read_training_notes
from tunesmith.tokenization.midi_io import load_midi

ANCHOR_LEVELS = (8, 4)  # window lengths (notes) indexed with every position
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier; arithmetic wraps mod 2**64


@dataclass(frozen=True)
class CopyMatch:
    """The longest run of a piece's notes that also occurs in a training file."""

    length_notes: int
    file: str | None  # None when no note matches at all
    start_in_generated: int  # index of the run's first note in the piece's grid
    start_in_file: int  # index of the run's first note in the file's grid

    def describe(self) -> str:
        """One line for people, e.g. ``longest copied run: 7 notes, from ff7-main.mid``."""
        if self.file is None or self.length_notes == 0:
            return "longest copied run: 0 notes"
        unit = "note" if self.length_notes == 1 else "notes"
        return f"longest copied run: {self.length_notes} {unit}, from {self.file}"

    def to_dict(self) -> dict[str, int | str | None]:
        return {
            "length_notes": self.length_notes,
            "file": self.file,
            "start_in_generated": self.start_in_generated,
            "start_in_file": self.start_in_file,
        }


def _tokens(pitches: np.ndarray, durs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per note: the (interval, duration) token, and the duration-only token a window starts with.

    An interval is at least -127, so ``interval + 128 >= 1`` and the two kinds of
    token never collide.
    """
    interval = np.zeros(len(pitches), dtype=np.int64)
    interval[1:] = pitches[1:].astype(np.int64) - pitches[:-1]
    body = ((interval + 128).astype(np.uint64) << np.uint64(32)) | durs.astype(np.uint64)
    return body, durs.astype(np.uint64)


def _window_hashes(body: np.ndarray, head: np.ndarray, k: int) -> np.ndarray:
    """Hash of each window of k notes: its first note's duration, then k - 1 (interval, duration)."""
    n = len(body) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = head[:n].copy()
    for t in range(1, k):
        h = h * _BASE + body[t : t + n]
    return h


def _valid_starts(file_of: np.ndarray, k: int) -> np.ndarray:
    """Window starts (global note positions) whose k notes lie in one file."""
    n = len(file_of) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(file_of[:n] == file_of[k - 1 :])


class MemorisationIndex:
    """Window-hash index of a training set's notes; see the module docstring."""

    def __init__(
        self, pitches: np.ndarray, durs: np.ndarray, offsets: np.ndarray, names: Sequence[str]
    ):
        if len(offsets) != len(names) + 1:
            raise ValueError("offsets must have one entry more than names")
        self.pitches = np.asarray(pitches, dtype=np.int16)
        self.durs = np.asarray(durs, dtype=np.int32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.names = [str(n) for n in names]
        self._file_of = np.repeat(np.arange(len(self.names)), np.diff(self.offsets))
        self._body, self._head = _tokens(self.pitches, self.durs)
        # Per anchor level k: window hashes sorted, with the window starts in the same order.
        self._anchors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for k in ANCHOR_LEVELS:
            starts = _valid_starts(self._file_of, k)
            h = _window_hashes(self._body, self._head, k)[starts]
            order = np.argsort(h, kind="stable")
            self._anchors[k] = (h[order], starts[order])
        # Below the smallest anchor: the distinct short windows and where each first occurs.
        self._short: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for k in range(1, min(ANCHOR_LEVELS)):
            starts = _valid_starts(self._file_of, k)
            h, first = np.unique(
                _window_hashes(self._body, self._head, k)[starts], return_index=True
            )
            self._short[k] = (h, starts[first])

    @classmethod
    def build(
        cls,
        pieces: Iterable[symusic.Score | np.ndarray | str | os.PathLike],
        names: Sequence[str] | None = None,
    ) -> MemorisationIndex:
        """Index MIDI paths, Scores or ``(step, pitch, dur)`` grids; names default to file names.

        A file that cannot be read raises :class:`~tunesmith.errors.BadMidiError`.
        """
        grids, default_names = [], []
        for i, piece in enumerate(pieces):
            if isinstance(piece, str | os.PathLike):
                grids.append(as_grid(load_midi(piece)))
                default_names.append(Path(piece).name)
            else:
                grids.append(as_grid(piece))
                default_names.append(f"piece {i}")
        names = list(names) if names is not None else default_names
        if len(names) != len(grids):
            raise ValueError(f"{len(grids)} pieces but {len(names)} names")
        lengths = np.array([len(g) for g in grids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        notes = np.concatenate(grids) if grids else np.zeros((0, 3), dtype=np.int64)
        return cls(notes[:, 1], notes[:, 2], offsets, names)

    @property
    def n_notes(self) -> int:
        return int(self.offsets[-1])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the indexed notes to an ``.npz`` (hashes are rebuilt on load, in well under a second)."""
        path = Path(path)
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez_compressed(
                f,
                version=np.int64(FORMAT_VERSION),
                pitches=self.pitches.astype(np.int8),
                durs=self.durs,
                offsets=self.offsets,
                names=np.array(self.names, dtype=np.str_),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MemorisationIndex:
        """Read an index written by :meth:`save` (the format: :mod:`~tunesmith.generation.training_notes`)."""
        notes = read_training_notes(path)
        return cls(notes.pitches, notes.durs, notes.offsets, notes.names)

    def _file_start(self, pos: int) -> tuple[int, int]:
        f = int(self._file_of[pos])
        return f, int(pos - self.offsets[f])

    def _exact_run(
        self, body: np.ndarray, durs: np.ndarray, i: int, j: int
    ) -> tuple[int, int, int]:
        """The maximal run through piece note i aligned with training note j: (length, i0, j0)."""
        f = int(self._file_of[j])
        lo = min(i, j - int(self.offsets[f]))
        hi = min(len(durs) - i, int(self.offsets[f + 1]) - j)
        g = slice(i - lo, i + hi)
        t = slice(j - lo, j + hi)
        same_dur = durs[g] == self.durs[t]
        same_body = body[g] == self._body[t]  # interval to the previous note and duration
        if not same_dur[lo]:
            return 0, i, j
        # Note x continues the run of note x - 1 when its interval and duration agree.
        a = lo
        while a > 0 and same_dur[a - 1] and same_body[a]:
            a -= 1
        b = lo + 1
        while b < lo + hi and same_body[b]:
            b += 1
        return b - a, i - lo + a, j - lo + a

    def _anchor_match(
        self, body: np.ndarray, head: np.ndarray, durs: np.ndarray, k: int
    ) -> tuple[int, int, int]:
        hashes, starts = self._anchors[k]
        q = _window_hashes(body, head, k)
        lo = np.searchsorted(hashes, q, side="left")
        counts = np.searchsorted(hashes, q, side="right") - lo
        total = int(counts.sum())
        if total == 0:
            return 0, 0, 0
        gi = np.repeat(np.arange(len(q), dtype=np.int64), counts)
        # Index of every hit: each query's range lo..lo+count, flattened.
        first_of = np.repeat(np.cumsum(counts) - counts, counts)
        tj = starts[np.repeat(lo, counts) + np.arange(total) - first_of]
        diag = tj - gi
        order = np.lexsort((gi, diag))
        gi, diag = gi[order], diag[order]
        new = np.ones(total, dtype=bool)
        new[1:] = (diag[1:] != diag[:-1]) | (gi[1:] != gi[:-1] + 1)
        run_start = np.flatnonzero(new)
        run_len = np.diff(np.append(run_start, total))
        best = (0, 0, 0)
        # Longest chains first; verification on the notes guards against hash collisions.
        for r in np.argsort(-run_len, kind="stable"):
            if run_len[r] + k - 1 <= best[0]:
                break
            s = run_start[r]
            found = self._exact_run(body, durs, int(gi[s]), int(gi[s] + diag[s]))
            if found[0] > best[0]:
                best = found
        return best

    def longest_copy(self, piece: symusic.Score | np.ndarray, from_note: int = 0) -> CopyMatch:
        """The longest run of the piece's notes (from note ``from_note`` on) found in a training file.

        ``from_note`` leaves out a prompt: runs lie entirely in ``grid[from_note:]``;
        positions are still counted in the whole piece.
        """
        grid = as_grid(piece)[max(from_note, 0) :]
        if len(grid) == 0 or self.n_notes == 0:
            return CopyMatch(0, None, 0, 0)
        durs = grid[:, 2].astype(np.int32)
        body, head = _tokens(grid[:, 1], durs)
        for k in sorted(ANCHOR_LEVELS, reverse=True):
            length, i, j = self._anchor_match(body, head, durs, k)
            if length >= k:
                f, start = self._file_start(j)
                return CopyMatch(length, self.names[f], i + max(from_note, 0), start)
        for k in sorted(self._short, reverse=True):
            hashes, first = self._short[k]
            q = _window_hashes(body, head, k)
            pos = np.clip(np.searchsorted(hashes, q), 0, max(len(hashes) - 1, 0))
            hit = np.flatnonzero(hashes[pos] == q) if len(hashes) else np.zeros(0, dtype=np.int64)
            for i in hit:  # verify: a hash collision must not invent a run
                length, i0, j0 = self._exact_run(body, durs, int(i), int(first[pos[i]]))
                if length >= k:
                    f, start = self._file_start(j0)
                    return CopyMatch(length, self.names[f], i0 + max(from_note, 0), start)
        return CopyMatch(0, None, 0, 0)


def load_checkpoint_index(checkpoint_dir: str | os.PathLike | None) -> MemorisationIndex | None:
    """The index a checkpoint folder carries (:data:`INDEX_FILE`), or None if it has none."""
    if checkpoint_dir is None:
        return None
    path = Path(checkpoint_dir) / INDEX_FILE
    return MemorisationIndex.load(path) if path.is_file() else None


@functools.lru_cache(maxsize=4)
def _cached_index(index_file: str, mtime: float) -> MemorisationIndex:
    return MemorisationIndex.load(index_file)


def copy_of_training_data(
    checkpoint_dir: str | os.PathLike | None, grid: np.ndarray, from_note: int
) -> CopyMatch | None:
    """The longest copied run of ``grid[from_note:]``, if the checkpoint carries an index.

    The one call the CLI and the web UI make for every generated piece; the
    index is loaded once per process (per file and modification time).
    """
    if checkpoint_dir is None:
        return None
    path = Path(checkpoint_dir) / INDEX_FILE
    if not path.is_file():
        return None
    return _cached_index(str(path), path.stat().st_mtime).longest_copy(grid, from_note=from_note)


def longest_copy_naive(
    piece: symusic.Score | np.ndarray, train: Sequence[np.ndarray], names: Sequence[str]
) -> CopyMatch:
    """The same answer as :meth:`MemorisationIndex.longest_copy` by a quadratic scan.

    Compares every note of the piece with every note of every file (a dynamic
    programme along the diagonals); the reference that tests and the benchmark
    check the index against. Far too slow for real use.
    """
    grid = as_grid(piece)
    best = CopyMatch(0, None, 0, 0)
    if len(grid) == 0:
        return best
    g_body, _ = _tokens(grid[:, 1], grid[:, 2])
    for name, notes in zip(names, train, strict=True):
        notes = as_grid(notes)
        if len(notes) == 0:
            continue
        t_body, _ = _tokens(notes[:, 1], notes[:, 2])
        run = np.zeros(len(notes), dtype=np.int64)  # run ending at (previous piece note, file note)
        for i in range(len(grid)):
            same_dur = grid[i, 2] == notes[:, 2]
            cont = np.zeros(len(notes), dtype=np.int64)
            if i > 0:
                cont[1:] = np.where(g_body[i] == t_body[1:], run[:-1], 0)
            run = np.where(same_dur, cont + 1, 0)
            j = int(run.argmax())
            if run[j] > best.length_notes:
                length = int(run[j])
                best = CopyMatch(length, name, i - length + 1, j - length + 1)
    return best
