"""``--bars N --end`` and ``--seconds`` as masks: exact length, a held tonic chord over a tonic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harmony_checks import (
    SEARCHES,
    bass_misses,
    ending_misses,
    strong_beat_misses,
    tiny_generator,
)
from tunesmith.errors import BadParameterError
from tunesmith.generation import GenerationConfig, Generator
from tunesmith.generation.chords import ChordChart
from tunesmith.tokenization.midi_io import score_from_grid
from tunesmith.tokenization.pairs import EOS


@pytest.fixture(scope="module")
def gen() -> Generator:
    return tiny_generator()


def _params(search: str) -> dict:
    return {"search": search, "seed": 4, "beam_width": 3, "creativity": 900}


@pytest.mark.parametrize("search", SEARCHES)
def test_eight_bars_end_on_a_held_tonic_chord(gen: Generator, search: str) -> None:
    result = gen.generate(None, bars=8, end=True, scale="D:minor", **_params(search))
    grid = result.grid
    assert result.stop_reason == "length"
    assert ending_misses(grid, tonic=2, chord_step=112) == []
    assert (grid[:, 0] + grid[:, 2]).max() == 128  # exactly 8 bars
    assert result.score.end() == 8 * 4 * result.score.ticks_per_quarter


@pytest.mark.parametrize("search", SEARCHES)
def test_a_chart_with_an_ending(gen: Generator, search: str) -> None:
    text = "Am F C G"
    result = gen.generate(None, bars=5, end=True, chords=text, bass_root=True, **_params(search))
    chart, grid = ChordChart.parse(text), result.grid
    assert ending_misses(grid, tonic=9, chord_step=64) == []  # A minor, from the first chord
    assert strong_beat_misses(grid, chart, 0, 64) == []  # the ending decides the last bar
    assert bass_misses(grid, chart, 0, 64) == []


def test_the_tonic_comes_from_the_prompt_and_the_bars_from_its_bar_lines(gen: Generator) -> None:
    # A G major prompt whose last note starts mid-bar (step 20): the bars start at step 32.
    g_major = [67, 71, 74, 67, 62, 66, 67, 71, 74, 79, 67]
    rows = np.array([[2 * i, p, 2] for i, p in enumerate(g_major)])
    result = gen.generate(score_from_grid(rows, bpm=100), bars=2, end=True, seed=1)
    assert ending_misses(result.grid[len(rows) :], tonic=7, chord_step=32 + 16) == []


def test_the_model_cannot_end_early_when_an_ending_is_asked_for() -> None:
    gen = tiny_generator()
    with torch.no_grad():
        gen.model.embed.weight[:] = 0  # every position predicts the same: EOS, by far
        gen.model.embed.weight[EOS] = 1
    result = gen.generate(None, bars=2, end=True, search="greedy")
    assert result.stop_reason == "length" and EOS not in result.new_ids
    assert ending_misses(result.grid, tonic=0, chord_step=16) == []  # C major: no key to find


def test_one_voice_ends_on_the_tonic(gen: Generator) -> None:
    result = gen.generate(None, bars=2, end=True, max_polyphony=1, scale="E:major", seed=2)
    final = result.grid[result.grid[:, 0] >= 16]
    assert final.tolist() == [[16, final[0, 1], 16]] and final[0, 1] % 12 == 4


def test_seconds_are_whole_bars_at_the_prompt_tempo(gen: Generator) -> None:
    prompt = score_from_grid(np.array([[0, 60, 4], [16, 64, 4]]), bpm=90)
    result = gen.generate(prompt, seconds=8.0, end=True, seed=3)  # 12 beats at 90 bpm: 3 bars
    assert result.config.bars == 3 and result.config.seconds == 8.0
    assert ending_misses(result.grid[2:], tonic=0, chord_step=16 + 32) == []
    assert gen.generate(None, seconds=4.0, bpm=60).config.bars == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"end": True}, r"^--end: needs a length to end at \(--bars N or --seconds S\)$"),
        ({"end": True, "notes": 32}, "^--end: needs a length"),
        ({"seconds": 0.0}, "^seconds: must be in"),
    ],
)
def test_bad_lengths_are_one_line_errors(params: dict, message: str) -> None:
    with pytest.raises(BadParameterError, match=message):
        GenerationConfig(**params)


def test_a_range_without_the_tonic_is_refused(gen: Generator) -> None:
    with pytest.raises(BadParameterError, match="^--end: --pitch-range 61-70 holds no tonic"):
        gen.generate(None, bars=2, end=True, scale="C:major", pitch_range="61-70")
