"""A slow stand-in Generator, for browser tests that need a generation to last.

``FakeGenerator`` has the real one's ``generate`` signature and returns a real
:class:`GenerationResult`; it appends seeded random notes after the prompt, ``delay``
seconds each, reports progress and honours cancellation. Its ``infill`` is
:func:`fill_bars`, a stand-in for ``Generator.infill`` (which needs a model trained
to fill in): the notes outside the bars stay, a few random ones go inside. Everything
else tests the real Generator on a tiny model.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import symusic

from tunesmith.errors import BadMidiError, BadParameterError
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.result import GenerationResult
from tunesmith.tokenization.midi_io import STEPS_PER_BAR, grid_notes, score_bpm, score_from_grid


class FakeGenerator:
    """``generate`` like the real Generator's; ``delay`` seconds pass per new note."""

    checkpoint = None
    checksum = "fake"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def infill(
        self, score: symusic.Score, bars: tuple[int, int], **kwargs: Any
    ) -> GenerationResult:
        return fill_bars(score, bars, **kwargs)

    def generate(
        self,
        prompt: symusic.Score | None = None,
        prompt_notes: int | None = None,
        config: GenerationConfig | None = None,
        callback: Any = None,
    ) -> GenerationResult:
        cfg = config or GenerationConfig()
        rows = np.zeros((0, 3), dtype=np.int64)
        if prompt is not None:
            rows = grid_notes(prompt).astype(np.int64)
            if len(rows) == 0:
                raise BadMidiError("the prompt has no notes in the piano range (21-108)")
            rows = rows[:prompt_notes] if prompt_notes is not None else rows
        low, high = (48, 84)
        if cfg.pitch_range:
            low, high = (int(x) for x in cfg.pitch_range.split("-"))
        rng = np.random.default_rng(cfg.seed)
        step = int(rows[:, 0].max()) + 2 if len(rows) else 0
        new, stop_reason, t0 = [], "length", time.perf_counter()
        # The real generator reports after every token, so (0, target) can come
        # before any note (after a rest token); a Stop there yields no note at all.
        if callback is not None and callback(0, cfg.notes):
            stop_reason = "cancelled"
        for i in range(0 if stop_reason == "cancelled" else cfg.notes):
            if self.delay:
                time.sleep(self.delay)
            new.append((step, int(rng.integers(low, high + 1)), int(rng.integers(1, 5))))
            step += int(rng.integers(1, 4))
            if callback is not None and callback(i + 1, cfg.notes):
                stop_reason = "cancelled"
                break
        grid = np.concatenate([rows, np.array(new, dtype=np.int64).reshape(-1, 3)])
        bpm = score_bpm(prompt) if prompt is not None else 120.0
        seconds = max(time.perf_counter() - t0, 1e-6)
        return GenerationResult(
            score=score_from_grid(grid, bpm=bpm),
            grid=grid.astype(np.int32),
            ids=[],
            prompt_length=0,
            n_prompt_notes=len(rows),
            n_new_notes=len(new),
            seconds=seconds,
            tokens_per_second=2 * len(new) / seconds,
            stop_reason=stop_reason,
            config=cfg,
            bpm=bpm,
        )


def fill_bars(
    score: symusic.Score,
    bars: tuple[int, int],
    config: GenerationConfig | None = None,
    callback: Any = None,
    prompt_name: str | None = None,
    **params: Any,
) -> GenerationResult:
    """``Generator.infill``'s contract: notes outside the bars kept (held ones trimmed), new in."""
    cfg = (config or GenerationConfig()).with_params(**params)
    rows = grid_notes(score).astype(np.int64)
    (first, last), end = bars, int((rows[:, 0] + rows[:, 2]).max())
    start, stop = (first - 1) * STEPS_PER_BAR, last * STEPS_PER_BAR
    if first < 1 or last < first or start >= end:
        raise BadParameterError(f"bars {first}-{last}: not a span of this piece")
    before, after = rows[rows[:, 0] < start], rows[rows[:, 0] >= stop]
    before[:, 2] = np.minimum(before[:, 2], start - before[:, 0])
    rng = np.random.default_rng(cfg.seed)
    n_new = min(cfg.notes, 3 * (last - first + 1))
    steps = np.sort(rng.choice(np.arange(start, stop), n_new, replace=False))
    new = np.stack([steps, rng.integers(48, 85, n_new), np.minimum(2, stop - steps)], 1)
    for i in range(n_new):
        if callback is not None:
            callback(i + 1, n_new)
    grid = np.concatenate([before, new, after])
    grid = grid[np.lexsort((-grid[:, 2], -grid[:, 1], grid[:, 0]))]
    bpm = score_bpm(score)
    return GenerationResult(
        score=score_from_grid(grid, bpm=bpm),
        grid=grid.astype(np.int32),
        ids=[],
        prompt_length=0,
        n_prompt_notes=len(before) + len(after),
        n_new_notes=n_new,
        seconds=1e-3,
        tokens_per_second=2000.0 * n_new,
        stop_reason="length",
        config=cfg,
        bpm=bpm,
        span=(start, stop),
    )
