"""Checks of a generated grid against a chord chart and an ending, shared by the rule tests.

Grids are ``(N, 3)`` rows of ``(step, pitch, duration)``; ``origin`` is the grid step
where the chart (and the ending's bars) begin.
"""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.generation import Generator
from tunesmith.generation.chords import ChordChart, is_strong_beat
from tunesmith.model import Transformer, preset
from tunesmith.tokenization import PairTokenizer

SEARCHES = ("greedy", "top_k", "top_p", "beam")


def tiny_generator(seed: int = 0) -> Generator:
    """Random weights, as tests/test_search.py's; a context no test here slides."""
    tok = PairTokenizer()
    torch.manual_seed(seed)
    model = Transformer(preset("tiny", tok.vocab_size, context=256), pad_id=tok.pad_id)
    return Generator(model, tok)


def strong_beat_misses(grid: np.ndarray, chart: ChordChart, origin: int, stop: int) -> list:
    """Notes starting on a strong beat in ``[origin, stop)`` that are not tones of the chord."""
    return [
        (step, pitch)
        for step, pitch, _ in grid.tolist()
        if origin <= step < stop
        and is_strong_beat(step - origin)
        and pitch % 12 not in chart.chord_at(step - origin).pitch_classes
    ]


def weak_beat_misses(
    grid: np.ndarray, chart: ChordChart, key: frozenset[int], origin: int, stop: int
) -> list:
    """Notes in ``[origin, stop)`` neither in their chord nor in ``key``."""
    return [
        (step, pitch)
        for step, pitch, _ in grid.tolist()
        if origin <= step < stop
        and pitch % 12 not in chart.chord_at(step - origin).pitch_classes | key
    ]


def bass_misses(grid: np.ndarray, chart: ChordChart, origin: int, stop: int) -> list:
    """Chord changes in ``[origin, stop)`` whose lowest sounding note is not the chord's bass."""
    misses = []
    for change in range(origin, stop):
        if not chart.is_change(change - origin):
            continue
        sounding = [p for s, p, d in grid.tolist() if s <= change < s + d]
        bass = chart.chord_at(change - origin).bass
        if not sounding or min(sounding) % 12 != bass:
            misses.append((change, sorted(sounding)))
    return misses


def ending_misses(grid: np.ndarray, tonic: int, chord_step: int) -> list[str]:
    """What breaks the ending: notes into the final bar, a final chord not held, not on a tonic."""
    end = chord_step + 16
    before, final = grid[grid[:, 0] < chord_step], grid[grid[:, 0] >= chord_step]
    problems = []
    if len(before) and (before[:, 0] + before[:, 2]).max() > chord_step:
        problems.append("a note sounds into the final bar")
    if not len(final):
        return [*problems, "no final chord"]
    if (final[:, 0] != chord_step).any() or (final[:, 0] + final[:, 2] != end).any():
        problems.append(f"the final chord is not one chord held to {end}: {final.tolist()}")
    if final[:, 1].min() % 12 != tonic:
        problems.append(f"the final chord's lowest note {final[:, 1].min()} is not the tonic")
    return problems
