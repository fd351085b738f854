"""Fill-in-the-middle (FIM) for the pairs encoding: training windows and infill prompts.

A span of whole bars (16 steps each, 4/4) is cut out of the music and moved to the
end, so a left-to-right model sees what comes after the gap before it writes the
gap (Bavarian et al. 2022). Ids are the pairs tokenizer's with ``infill=True``::

    [BOS PAD] prefix [SEP w..] GAP d.. SUFFIX suffix [EOS] MIDDLE middle SEP w.. FILL_END

- ``prefix``: the notes before the span, as in the plain encoding; notes held into
  the span are kept and trimmed to end where it starts. ``SEP w..`` advances to the
  span's first step. ``BOS PAD`` only when the prefix starts the piece.
- ``GAP d..``: the span's length in steps as duration ids (split at 160 like a rest).
- ``SUFFIX suffix``: the notes from the span's end on, their time counted from the
  span's end (a leading ``SEP w`` when the first starts later); ``EOS`` when the
  suffix ends the piece.
- ``MIDDLE middle``: the span's notes, time counted from its first step, each note
  trimmed to end by the span's end, then ``SEP w..`` up to exactly the gap's length,
  then ``FILL_END``. An infill prompt stops after ``MIDDLE``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.tokenization.bar_clock import elapsed
from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.tokenization.pairs import (
    BOS,
    DUR_OFFSET,
    EOS,
    FILL_END,
    GAP,
    MAX_WAIT_STEPS,
    MIDDLE,
    N_DURATIONS,
    PAD,
    PITCH_OFFSET,
    SEP,
    SUFFIX,
    PairTokenizer,
)


def wait_ids(steps: int, head: int = SEP) -> list[int]:
    """``head d`` pairs advancing ``steps`` (several when over 160), or ``[]`` for 0."""
    out: list[int] = []
    while steps > 0:
        d = min(steps, MAX_WAIT_STEPS)
        out += [head, DUR_OFFSET + d]
        steps -= d
    return out


def gap_ids(steps: int) -> list[int]:
    """``GAP`` and the gap's length as duration ids (``GAP 64`` for four bars)."""
    return [GAP] + wait_ids(steps)[1::2]


def split_at_span(notes: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """``(prefix, middle, suffix)`` rows of ``(step, pitch, dur)`` notes around ``[start, stop)``.

    Prefix notes keep their steps and end by ``start``; middle notes count from
    ``start`` and end by ``stop``; suffix notes count from ``stop``.
    """
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    onset = notes[:, 0]
    prefix = notes[onset < start].copy()
    prefix[:, 2] = np.minimum(prefix[:, 2], start - prefix[:, 0])
    middle = notes[(onset >= start) & (onset < stop)].copy()
    middle[:, 2] = np.minimum(middle[:, 2], stop - middle[:, 0])
    middle[:, 0] -= start
    suffix = notes[onset >= stop].copy()
    suffix[:, 0] -= stop
    return prefix, middle, suffix


def _encode(notes: np.ndarray) -> list[int]:
    return PairTokenizer().encode_grid(notes, prefix=False).tolist()


def prefix_ids(notes: np.ndarray, origin: int, start: int, bos: bool) -> list[int]:
    """The prefix part: ``[BOS PAD]``, the notes counted from ``origin``, a rest to ``start``."""
    head = [BOS, PAD] if bos else []
    if len(notes) == 0 and not bos:
        return []
    shifted = notes - np.array([origin, 0, 0])
    last = int(notes[-1, 0]) if len(notes) else origin
    return head + _encode(shifted) + wait_ids(start - last)


def suffix_ids(notes: np.ndarray, ends_piece: bool) -> list[int]:
    """The suffix part: ``SUFFIX``, the notes (counted from the span's end), ``EOS`` if last."""
    return [SUFFIX] + _encode(notes) + ([EOS] if ends_piece else [])


def middle_ids(notes: np.ndarray, length: int) -> list[int]:
    """The middle part: ``MIDDLE``, the notes, a rest up to ``length`` steps, ``FILL_END``."""
    last = int(notes[-1, 0]) if len(notes) else 0
    return [MIDDLE] + _encode(notes) + wait_ids(length - last) + [FILL_END]


def fit(prefix: list[int], suffix: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Drop whole pairs from the prefix's start, then the suffix's end, to save ``budget`` ids."""
    if budget <= 0:
        return prefix, suffix
    cut = min(len(prefix), budget + budget % 2)  # the prefix is all pairs (BOS PAD too)
    prefix, budget = prefix[cut:], budget - cut
    if budget > 0:
        body = suffix[1:-1] if suffix[-1] == EOS else suffix[1:]  # a cut suffix ends no piece
        keep = max(0, min(len(body), len(suffix) - 1 - budget))
        suffix = [SUFFIX] + body[: keep - keep % 2]
    return prefix, suffix


def parse_pairs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head positions of the note pairs in seed ids and their onset steps (from the first id).

    A pair is a pitch or SEP followed by a duration, as :meth:`PairTokenizer.decode_grid`
    reads them; only note pairs (duration > 0) are returned.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    head, value = ids[:-1], ids[1:]
    is_pitch = (head >= PITCH_OFFSET) & (head < DUR_OFFSET)
    is_pair = (
        (is_pitch | (head == SEP)) & (value >= DUR_OFFSET) & (value < DUR_OFFSET + N_DURATIONS)
    )
    pos = np.flatnonzero(is_pair)
    dur = ids[pos + 1] - DUR_OFFSET
    advance = np.where(ids[pos] == SEP, dur, 0)
    onset = np.cumsum(advance) - advance
    note = (ids[pos] != SEP) & (dur > 0)
    return pos[note], onset[note]


def choose_span(
    onsets: np.ndarray, at_start: bool, at_end: bool, rng: np.random.Generator
) -> tuple[int, int] | None:
    """A random span of whole bars whose notes all lie in a window, or None if none fits.

    Its first bar line is after the window's first onset (whose chord may be cut)
    unless the window starts the piece, its last at or before the window's last
    onset (ditto) unless the window ends it; it covers at most half the bars there.
    """
    if len(onsets) == 0:
        return None
    low = 0 if at_start else int(onsets[0]) + 1
    high = int(onsets[-1])
    if at_end:
        high = -(-(high + 1) // STEPS_PER_BAR) * STEPS_PER_BAR
    first, last = -(-low // STEPS_PER_BAR), high // STEPS_PER_BAR
    n = last - first
    if n < 1:
        return None
    k = int(rng.integers(1, max(1, (n + 1) // 2) + 1))
    a = int(rng.integers(first, last - k + 1))
    return a * STEPS_PER_BAR, (a + k) * STEPS_PER_BAR


@dataclass(frozen=True)
class FimWindow:
    """A training window in FIM form: ``ids`` and where a target must not be learned.

    ``first_step`` is the piece's time (in steps from the file's first id) before
    ``ids[0]``: ``bar_positions(ids, first_step)`` are the window's positions in the bar.
    """

    ids: np.ndarray  # (length,) int64, PAD-padded
    no_target: np.ndarray  # (length,) bool: GAP, the gap's length, MIDDLE
    span: tuple[int, int]  # [start, stop) in steps from the file's time origin, as first_step
    first_step: int = 0


def fim_window(
    before: np.ndarray, window: np.ndarray, at_end: bool, length: int, rng: np.random.Generator
) -> FimWindow | None:
    """A window rearranged for fill-in-the-middle, or None when no bar span fits in it.

    ``before`` are the file's ids before the window (for the bar lines), ``window``
    its own ids (possibly transposed; no EOS or PAD), ``at_end`` whether the file
    ends with it, ``length`` the ids to return.
    """
    ids = np.concatenate([np.asarray(before, np.int64), np.asarray(window, np.int64)])
    pos, onset = parse_pairs(ids)
    inside = pos >= len(before)
    pos, onset = pos[inside], onset[inside]
    notes = np.stack([onset, ids[pos] - PITCH_OFFSET, ids[pos + 1] - DUR_OFFSET], 1)
    span = choose_span(onset, len(before) == 0, at_end, rng)
    if span is None:
        return None
    start, stop = span
    prefix, middle, suffix = split_at_span(notes, start, stop)
    origin = 0 if len(before) == 0 else int(onset[0])
    head = prefix_ids(prefix, origin, start, bos=len(before) == 0)
    tail = suffix_ids(suffix, at_end)
    gap, mid = gap_ids(stop - start), middle_ids(middle, stop - start)
    head, tail = fit(head, tail, len(head) + len(gap) + len(tail) + len(mid) - length)
    seq = head + gap + tail + mid
    if len(seq) > length:  # the middle alone nearly fills the window: keep it left-to-right
        return None
    out = np.full(length, PAD, dtype=np.int64)
    out[: len(seq)] = seq
    no_target = np.zeros(length, dtype=bool)
    no_target[len(head) : len(head) + len(gap)] = True
    no_target[len(head) + len(gap) + len(tail)] = True
    # GAP is read at the span's start: what the kept prefix advances lies before it.
    return FimWindow(out, no_target, (start, stop), start - elapsed(head))


@dataclass(frozen=True)
class InfillPrompt:
    """The ids that ask a FIM-trained model to fill a span, and the notes kept around it.

    ``prefix`` (trimmed at the span) and ``suffix`` are ``(step, pitch, dur)`` rows
    in the piece's own steps; a fill's notes go at ``start + step``.
    """

    ids: list[int]
    start: int
    stop: int
    prefix: np.ndarray
    suffix: np.ndarray

    @property
    def gap(self) -> int:
        return self.stop - self.start


def check_bars(grid: np.ndarray, bars: tuple[int, int]) -> tuple[int, int]:
    """``[start, stop)`` steps of bars ``first..last`` (1-based, inclusive) of a piece."""
    first, last = bars
    end = int((grid[:, 0] + grid[:, 2]).max()) if len(grid) else 0
    n_bars = -(-end // STEPS_PER_BAR)
    if first < 1 or last < first:
        raise BadParameterError(f"--bars {first}-{last}: give first-last with 1 <= first <= last")
    if last > n_bars:
        raise BadParameterError(f"--bars {first}-{last}: the piece has only {n_bars} bars")
    return (first - 1) * STEPS_PER_BAR, last * STEPS_PER_BAR


def infill_prompt(
    grid: np.ndarray, bars: tuple[int, int], max_tokens: int | None = None
) -> InfillPrompt:
    """The FIM prompt that regenerates bars ``first..last`` (1-based, inclusive) of ``grid``.

    ``grid`` holds ``(step, pitch, dur)`` rows ordered as ``grid_notes`` orders
    them. With ``max_tokens`` the prompt is cut to that many ids, first from the
    prefix's start, then from the suffix's end (as training windows are).
    """
    grid = np.asarray(grid, dtype=np.int64).reshape(-1, 3)
    start, stop = check_bars(grid, bars)
    prefix, _, suffix = split_at_span(grid, start, stop)
    head = prefix_ids(prefix, 0, start, bos=True)
    gap, tail = gap_ids(stop - start), suffix_ids(suffix, ends_piece=True)
    if max_tokens is not None:
        room = max_tokens - len(gap) - 1
        if room < 1:
            raise BadParameterError(f"max_tokens: {max_tokens} leaves no room for the prompt")
        head, tail = fit(head, tail, len(head) + len(tail) - room)
    suffix[:, 0] += stop
    return InfillPrompt(head + gap + tail + [MIDDLE], start, stop, prefix, suffix)


def assemble(prompt: InfillPrompt, middle: np.ndarray) -> np.ndarray:
    """The whole piece's ``(step, pitch, dur)`` rows with ``middle`` (from the span's start) in the gap.

    Rows are ordered as ``grid_notes`` orders them; every note outside the span is
    the prompt's (notes held into the span trimmed at its start).
    """
    middle = np.asarray(middle, dtype=np.int64).reshape(-1, 3).copy()
    middle[:, 0] += prompt.start
    rows = np.concatenate([prompt.prefix, middle, prompt.suffix])
    return rows[np.lexsort((-rows[:, 2], -rows[:, 1], rows[:, 0]))]
