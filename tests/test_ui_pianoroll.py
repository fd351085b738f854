"""The piano roll: two colours, deterministic pixels, fast enough for every generation."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.errors import BadParameterError
from tunesmith.ui.pianoroll import NEW_COLOUR, PROMPT_COLOUR, draw_pianoroll, pitch_name


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


def count(image: np.ndarray, hex_colour: str) -> int:
    return int(np.all(image == rgb(hex_colour), axis=2).sum())


def random_grid(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = np.sort(rng.integers(0, 2 * n, n))
    return np.stack([steps, rng.integers(36, 96, n), rng.integers(1, 8, n)], axis=1)


def test_prompt_and_new_notes_have_their_own_colours():
    grid = random_grid(60)
    image = draw_pianoroll(grid, n_prompt_notes=30, width=800, height=300)
    assert image.shape == (300, 800, 3) and image.dtype == np.uint8
    assert count(image, PROMPT_COLOUR) > 200 and count(image, NEW_COLOUR) > 200
    only_prompt = draw_pianoroll(grid, n_prompt_notes=60, width=800, height=300)
    # The legend keeps a swatch of each colour used; beyond it, no orange note is drawn.
    assert count(only_prompt, NEW_COLOUR) < count(image, NEW_COLOUR) // 4


def test_same_input_same_pixels():
    grid = random_grid(200, seed=3)
    assert np.array_equal(draw_pianoroll(grid, 50), draw_pianoroll(grid, 50))


def test_two_thousand_notes_draw():
    # How fast is for a benchmark, not a test (tests never assert on wall-clock time).
    image = draw_pianoroll(random_grid(2000), 500)
    assert image.shape == (420, 1200, 3) and image.dtype == np.uint8


def test_empty_grid_and_bad_arguments():
    assert draw_pianoroll(np.zeros((0, 3)), 0).shape == (420, 1200, 3)
    with pytest.raises(BadParameterError, match="n_prompt_notes"):
        draw_pianoroll(random_grid(5), 6)
    with pytest.raises(BadParameterError, match="at least 100x100"):
        draw_pianoroll(random_grid(5), 0, width=50)


def test_pitch_names():
    assert [pitch_name(p) for p in (21, 60, 69, 108)] == ["A0", "C4", "A4", "C8"]
