"""The piano roll: three roles' colours, the chosen bars, the zoomed view, deterministic pixels."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from tunesmith.errors import BadParameterError
from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.ui.pianoroll import (
    CONTEXT_BARS,
    KEPT_COLOUR,
    NEW_COLOUR,
    PROMPT_COLOUR,
    SPAN_COLOUR,
    bar_numbers,
    draw_pianoroll,
    focus,
    piece_end,
    pitch_name,
)


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


def long_piece() -> tuple[np.ndarray, str]:
    """832 notes over 104 bars (the user's first 400), then 64 new ones in bars 105-108."""
    rng = np.random.default_rng(5)
    old = np.stack([np.sort(rng.integers(0, 1664, 832)), rng.integers(40, 90, 832),
                    rng.integers(1, 6, 832)], 1)  # fmt: skip
    new = np.stack([np.sort(rng.integers(1664, 1728, 64)), rng.integers(50, 80, 64),
                    rng.integers(1, 4, 64)], 1)  # fmt: skip
    return np.concatenate([old, new]), "p" * 400 + "k" * 432 + "n" * 64


def legend_strip(image: np.ndarray) -> np.ndarray:
    """The band above the roll, where the legend is."""
    return image[: int(image.shape[0] * 0.1)]


def test_prompt_kept_and_new_notes_have_their_own_colours_and_legend():
    grid, roles = long_piece()
    image = draw_pianoroll(grid, roles=roles, width=800, height=300)
    for colour in (PROMPT_COLOUR, KEPT_COLOUR, NEW_COLOUR):
        assert count(image, colour) > 100, colour
        assert count(legend_strip(image), colour) > 20, f"no legend swatch of {colour}"
    no_kept = draw_pianoroll(grid, roles=roles.replace("k", "p"), width=800, height=300)
    assert count(no_kept, KEPT_COLOUR) == 0  # no kept note, no swatch either
    with pytest.raises(BadParameterError, match="roles"):
        draw_pianoroll(grid, roles="px" * (len(grid) // 2))


def test_chosen_bars_are_shaded():
    grid, roles = long_piece()
    plain = draw_pianoroll(grid, roles=roles, view=(1600, 1728))
    shaded = draw_pianoroll(grid, roles=roles, view=(1600, 1728), highlight=(1632, 1664))
    assert count(plain, SPAN_COLOUR) == 0 and count(shaded, SPAN_COLOUR) > 5000
    below_legend = shaded[shaded.shape[0] // 5 :]
    columns = np.nonzero(np.all(below_legend == rgb(SPAN_COLOUR), axis=2).any(axis=0))[0]
    # Two of the roll's eight bars, each about a ninth of the 1,200 pixels' axes wide.
    assert 200 < columns.max() - columns.min() < 400


def test_bars_are_numbered_in_the_view():
    where, labels = bar_numbers(0, 8 * STEPS_PER_BAR)
    assert labels == [str(b) for b in range(1, 9)]
    assert list(where) == [STEPS_PER_BAR * (b + 0.5) for b in range(8)]
    _, zoomed = bar_numbers(100 * STEPS_PER_BAR, 110 * STEPS_PER_BAR)
    assert zoomed == [str(b) for b in range(101, 111)]
    _, many = bar_numbers(0, 200 * STEPS_PER_BAR)  # thinned out, still from bar 1
    assert len(many) <= 25 and many[0] == "1" and all(int(n) % 2 == 1 for n in many)


def test_the_default_view_is_what_changed_with_context():
    grid, roles = long_piece()
    start, stop = focus(grid, roles)
    new = grid[-64:]
    assert start <= new[:, 0].min() - CONTEXT_BARS * STEPS_PER_BAR
    assert start > new[:, 0].min() - (CONTEXT_BARS + 1) * STEPS_PER_BAR
    assert stop == piece_end(grid) == 1744  # the piece's end: no context past it
    assert start % STEPS_PER_BAR == 0 and (stop - start) // STEPS_PER_BAR <= 10
    # A regenerated span in the middle: its bars and two on each side.
    middle = focus(grid, "p" * len(grid), span=(800, 848))
    assert middle == (800 - CONTEXT_BARS * 16, 848 + CONTEXT_BARS * 16)
    # Chosen bars elsewhere widen the view to show them too.
    assert focus(grid, roles, highlight=(0, 16))[0] == 0
    assert focus(grid, "p" * len(grid)) == (0, 1744)  # nothing new: the whole piece


def test_zoomed_and_whole_views_differ():
    grid, roles = long_piece()
    zoomed = draw_pianoroll(grid, roles=roles, view=focus(grid, roles))
    whole = draw_pianoroll(grid, roles=roles)
    # Zoomed, the 64 new notes fill the roll; in the whole piece they are a sliver.
    assert count(zoomed, NEW_COLOUR) > 4 * count(whole, NEW_COLOUR)
    with pytest.raises(BadParameterError, match="view"):
        draw_pianoroll(grid, roles=roles, view=(50, 50))


def test_a_drawn_roll_frees_its_pixel_buffer_without_the_garbage_collector():
    # A figure's artists form reference cycles that a busy server collects only every
    # few dozen rolls; the 2 MB renderer must not wait in them (issue 12, item 6).
    from matplotlib.backends.backend_agg import RendererAgg

    def renderers() -> int:
        return sum(isinstance(o, RendererAgg) for o in gc.get_objects())

    grid = np.array([[i * 4, 48 + i % 24, 4] for i in range(64)])
    gc.collect()
    gc.disable()
    try:
        before = renderers()
        for _ in range(3):
            draw_pianoroll(grid, 16, title="t", highlight=(16, 48))
        assert renderers() == before
    finally:
        gc.enable()
