"""Each token's position in the bar, read from the pairs encoding's running time.

The pairs encoding spells time only as advances (``SEP d``), so where a token stands
in the bar is the running sum of those advances: the position of a token is the
16th-note step, modulo a 4/4 bar, at which the next note would start once that
token is read. A model given it sees the metric grid without any change of the
token format. The rules, in :func:`step` only:

- ``SEP d``: time advances by ``d`` (on the duration id after ``SEP``);
- a pitch and its duration, ``BOS``, ``PAD``, ``EOS``, ``FILL_END``: time stays;
- fill-in-the-middle (:mod:`tunesmith.data.infill`): ``GAP d..`` marks the gap's
  start (the time when ``GAP`` is read) and its length (the durations after it, not
  advances); after ``SUFFIX`` time is the gap's end, after ``MIDDLE`` its start.

:func:`bar_positions` applies the step to a whole array (training windows, losses);
:class:`BarClock` applies it token by token to rows being decoded (beam reorders
them). Both go through :func:`step`, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.tokenization.pairs import DUR_OFFSET, GAP, MIDDLE, N_DURATIONS, SEP, SUFFIX

# What the next duration id means, by the token before it.
NOTE, AFTER_SEP, GAP_LENGTH = 0, 1, 2


class ClockState(NamedTuple):
    """The running time of one sequence and what its next duration id means."""

    time: int  # the grid step where the next note would start
    mode: int = NOTE  # NOTE (ignored), AFTER_SEP (an advance) or GAP_LENGTH
    gap_start: int = 0  # the time when the last GAP was read
    gap_length: int = 0  # the sum of the durations after it

    @property
    def position(self) -> int:
        """The position in the bar, 0..15."""
        return self.time % STEPS_PER_BAR


def step(state: ClockState, token: int) -> ClockState:
    """The state after reading ``token`` (an id of the pairs tokenizer, with or without infill)."""
    time, mode, gap_start, gap_length = state
    if DUR_OFFSET <= token < DUR_OFFSET + N_DURATIONS:
        d = token - DUR_OFFSET
        if mode == AFTER_SEP:
            return ClockState(time + d, NOTE, gap_start, gap_length)
        if mode == GAP_LENGTH:  # GAP's durations are the gap's length, not advances
            return ClockState(time, GAP_LENGTH, gap_start, gap_length + d)
        return ClockState(time, NOTE, gap_start, gap_length)
    if token == SEP:
        return ClockState(time, AFTER_SEP, gap_start, gap_length)
    if token == GAP:
        return ClockState(time, GAP_LENGTH, time, 0)
    if token == SUFFIX:
        return ClockState(gap_start + gap_length, NOTE, gap_start, gap_length)
    if token == MIDDLE:
        return ClockState(gap_start, NOTE, gap_start, gap_length)
    return ClockState(time, NOTE, gap_start, gap_length)  # a pitch, a special: time stays


def run(ids: Sequence[int] | np.ndarray, state: ClockState) -> tuple[np.ndarray, ClockState]:
    """Positions ``(len(ids),)`` uint8 after each id read from ``state``, and the final state."""
    out = []
    for token in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
        state = step(state, token)
        out.append(state.time % STEPS_PER_BAR)
    return np.array(out, dtype=np.uint8), state


def bar_positions(ids: Sequence[int] | np.ndarray, start_step: int = 0) -> np.ndarray:
    """``(len(ids),)`` uint8 position in the bar (0..15) after each id, time starting at ``start_step``.

    A file's ids start at step 0 (``BOS PAD``); a slice of them, as a training window
    is, keeps the positions of the whole file when they are computed before slicing.
    """
    return run(ids, ClockState(int(start_step)))[0]


def elapsed(ids: Sequence[int] | np.ndarray) -> int:
    """The time (in steps) after reading ``ids`` from step 0."""
    return run(ids, ClockState(0))[1].time


class BarClock:
    """The running time of rows being decoded: feed a token per row, read their positions.

    It starts as one row; :meth:`reorder` makes row i continue row ``index[i]`` (a
    beam search's reorder, or a fork when ``index`` is all zeros).
    """

    def __init__(self, start_step: int = 0) -> None:
        self.states = [ClockState(int(start_step))]

    @property
    def rows(self) -> int:
        return len(self.states)

    def feed_prompt(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Positions ``(len(ids),)`` after each prompt id; the clock must hold one row."""
        if self.rows != 1:
            raise RuntimeError("feed_prompt() needs one row")
        out, state = run(ids, self.states[0])
        self.states = [state]
        return out

    def feed(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        """Positions ``(rows,)`` after one more token per row."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1).tolist()
        if len(tokens) != self.rows:
            raise ValueError(f"{len(tokens)} tokens for {self.rows} rows")
        self.states = [step(s, t) for s, t in zip(self.states, tokens, strict=True)]
        return np.array([s.position for s in self.states], dtype=np.uint8)

    def reorder(self, index: Sequence[int] | np.ndarray) -> None:
        """Row i continues row ``index[i]``."""
        self.states = [self.states[i] for i in np.asarray(index, dtype=np.int64).tolist()]
