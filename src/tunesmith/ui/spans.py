"""The bars chosen beside the piano roll, each note's role, and the roll of a version.

Plain functions of plain values (no Gradio): :mod:`tunesmith.ui.callbacks` checks a
span with :func:`bar_span` before Regenerate bars, works out which notes are prompt,
kept or new with :func:`roles_after`, and draws a version with :func:`roll_image`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.generation.result import GenerationResult
from tunesmith.tokenization.midi_io import STEPS_PER_BAR, grid_notes, load_midi
from tunesmith.ui.pianoroll import draw_pianoroll, focus, piece_end
from tunesmith.ui.state import Version


@dataclass(frozen=True)
class RollOptions:
    """How the page wants the roll: the bars typed beside it and the whole-piece toggle.

    The bars are the number inputs' raw values (None, floats or ints); 0 or empty
    means no bars chosen.
    """

    first_bar: Any = None
    last_bar: Any = None
    whole_piece: bool = False


def _bar_number(raw: Any) -> int | None:
    """A number input's value as a whole bar number; None when empty."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise BadParameterError(f"bars: {raw!r} is not a bar number") from None
    if isinstance(raw, bool) or not number.is_integer():
        raise BadParameterError(f"bars: {raw!r} is not a whole bar number")
    return int(number)


def bar_span(first_bar: Any, last_bar: Any, grid: np.ndarray) -> tuple[int, int]:
    """The bars ``(first, last)`` (1-based, inclusive) to regenerate, checked against the piece.

    Raises a one-line :class:`BadParameterError` for a missing, reversed or empty
    span, or one outside the piece.
    """
    first, last = _bar_number(first_bar), _bar_number(last_bar)
    n_bars = piece_end(grid) // STEPS_PER_BAR
    if first is None or last is None or first == last == 0:
        raise BadParameterError("bars: give the first and the last bar to regenerate")
    if first < 1 or last < 1:
        raise BadParameterError(f"bars {first}-{last}: bars are numbered from 1")
    if last < first:
        raise BadParameterError(f"bars {first}-{last}: the first bar comes after the last")
    if last > n_bars:
        raise BadParameterError(f"bars {first}-{last}: the piece has only {n_bars} bars")
    return first, last


def chosen_steps(options: RollOptions, grid: np.ndarray) -> tuple[int, int] | None:
    """The steps of the bars typed beside the roll, or None while they are not a valid span."""
    try:
        first, last = bar_span(options.first_bar, options.last_bar, grid)
    except BadParameterError:
        return None  # half-typed: nothing highlighted until both numbers make a span
    return (first - 1) * STEPS_PER_BAR, last * STEPS_PER_BAR


def version_roles(version: Version, grid: np.ndarray) -> str:
    """The role of each row of ``grid`` (the version's notes): ``p``, ``k`` or ``n``."""
    if len(version.roles) == len(grid):
        return version.roles
    n_prompt = min(version.n_prompt_notes, len(grid))
    return "p" * n_prompt + "n" * (len(grid) - n_prompt)


def roles_after(result: GenerationResult, action: str, previous: Version | None) -> str:
    """The roles of the new version's notes (rows of ``grid_notes(result.score)``).

    New notes are those after the prompt, or those starting in the regenerated span.
    Older notes keep their prompt role if they had it (matched by step and pitch,
    which a held note trimmed at the span keeps); the others are kept.
    """
    before: dict[tuple[int, int], str] = {}
    if previous is not None and action != "generate":
        old = grid_notes(load_midi(previous.midi, name="the previous piece"))
        roles = version_roles(previous, old)
        before = {(s, p): r for (s, p, _), r in zip(old.tolist(), roles, strict=True)}
    grid = np.asarray(result.grid, dtype=np.int64).reshape(-1, 3)
    if result.span is not None:
        is_new = (grid[:, 0] >= result.span[0]) & (grid[:, 0] < result.span[1])
    else:
        is_new = np.arange(len(grid)) >= result.n_prompt_notes
    by_key = {}
    for (step, pitch, _), new in zip(grid.tolist(), is_new.tolist(), strict=True):
        if new:
            by_key[(step, pitch)] = "n"
        elif action == "generate" or before.get((step, pitch)) == "p":
            by_key[(step, pitch)] = "p"
        else:
            by_key[(step, pitch)] = "k"
    shown = grid_notes(result.score)
    return "".join(by_key.get((s, p), "n") for s, p, _ in shown.tolist())


def roll_image(
    version: Version, options: RollOptions | None = None, grid: np.ndarray | None = None
) -> np.ndarray:
    """The piano roll of ``version``: zoomed on what changed unless the whole piece is asked for."""
    options = options or RollOptions()
    if grid is None:
        grid = grid_notes(load_midi(version.midi, name="the current piece"))
    roles = version_roles(version, grid)
    highlight = chosen_steps(options, grid)
    view = None if options.whole_piece else focus(grid, roles, version.span, highlight)
    new_label = "regenerated" if version.span is not None else "new"
    return draw_pianoroll(grid, roles=roles, new_label=new_label, highlight=highlight, view=view)
