"""``--chords`` and ``--bass-root`` as masks: obeyed by every search on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest

from harmony_checks import (
    SEARCHES,
    bass_misses,
    strong_beat_misses,
    tiny_generator,
    weak_beat_misses,
)
from tunesmith.errors import BadParameterError
from tunesmith.generation import GenerationConfig, Generator
from tunesmith.generation.chords import ChordChart
from tunesmith.generation.constraints import parse_scale
from tunesmith.tokenization.midi_io import score_from_grid
from tunesmith.ui.params import config_from_controls, control_specs

CHART = "Am F | C G7 | Dm/F E | Am"
A_MINOR = parse_scale("A:minor")


@pytest.fixture(scope="module")
def gen() -> Generator:
    return tiny_generator()


def _params(search: str, seed: int = 3, temperature: float = 1.0) -> dict:
    # Random weights rest a lot: creativity makes notes, stop_at_eos=False keeps the length.
    return {"search": search, "seed": seed, "temperature": temperature, "beam_width": 3,
            "creativity": 900, "stop_at_eos": False}  # fmt: skip


@pytest.mark.parametrize("search", SEARCHES)
def test_every_strong_beat_note_is_a_chord_tone(gen: Generator, search: str) -> None:
    result = gen.generate(None, bars=4, chords=CHART, **_params(search, 1, 2.0))
    chart, grid = ChordChart.parse(CHART), result.grid
    assert result.stop_reason == "length" and len(grid) >= 8
    assert (grid[:, 0] % 8 == 0).any()  # strong beats were played on
    assert strong_beat_misses(grid, chart, 0, 64) == []
    # The key comes from the chart's first chord (A minor): weak beats keep to chord or key.
    assert weak_beat_misses(grid, chart, A_MINOR, 0, 64) == []


@pytest.mark.parametrize("search", SEARCHES)
def test_bass_root_is_the_lowest_sounding_note_at_each_change(gen: Generator, search: str) -> None:
    text = "C G/B Am | F G"
    result = gen.generate(None, bars=3, chords=text, bass_root=True, **_params(search))
    chart, grid = ChordChart.parse(text), result.grid
    assert result.stop_reason == "length" and len(grid) >= 8
    assert bass_misses(grid, chart, 0, 48) == []
    assert strong_beat_misses(grid, chart, 0, 48) == []


def test_the_chart_starts_at_the_first_bar_line_after_the_prompt(gen: Generator) -> None:
    # The prompt's last note starts at step 22: new notes begin there, the chart at step 32.
    prompt = score_from_grid(np.array([[0, 60, 4], [8, 64, 4], [16, 67, 4], [22, 72, 2]]), bpm=100)
    result = gen.generate(prompt, bars=4, chords="F Bb", bass_root=True, **_params("top_k"))
    chart, grid = ChordChart.parse("F Bb"), result.grid[4:]
    assert len(grid) and grid[:, 0].min() >= 22
    assert strong_beat_misses(grid, chart, 32, 22 + 64) == []
    assert bass_misses(grid, chart, 32, 22 + 64) == []


def test_a_prompt_note_below_every_bass_does_not_stall_decoding(gen: Generator) -> None:
    # A0 held from the prompt across the chart's first change: no bass can go below it, so
    # the rule lets the row rest there rather than leave it nothing legal.
    prompt = score_from_grid(np.array([[0, 21, 40], [0, 60, 4]]), bpm=120)
    result = gen.generate(
        prompt, bars=3, chords="E", bass_root=True, pitch_range="24-96", **_params("greedy")
    )
    assert result.stop_reason == "length" and len(result.grid) > 4


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"chords": "Am H7 C"}, r"^--chords: unknown chord symbol 'H7'$"),
        ({"chords": "C D E F G | C"}, "^--chords: bar .C D E F G. has 5 chords"),
        ({"chords": "F#", "scale": "C:major"}, "^--chords: --scale and --pitch-range leave no"),
        ({"chords": "C", "pitch_range": "62-63"}, "^--chords: --pitch-range leaves no tone of 'C'"),
        ({"chords": "C/F#", "scale": "C:major", "bass_root": True}, "^--bass-root: "),
        ({"bass_root": True}, r"^--bass-root: needs a chord chart \(--chords\)$"),
    ],
)
def test_bad_charts_are_one_line_errors(params: dict, message: str) -> None:
    with pytest.raises(BadParameterError, match=message) as err:
        GenerationConfig(**params)
    assert "\n" not in str(err.value)


def test_the_web_controls_carry_chords_bass_root_end_and_seconds() -> None:
    kinds = {spec.name: spec.kind for spec in control_specs()}
    assert kinds["chords"] == "text" and kinds["seconds"] == "text"
    assert kinds["bass_root"] == kinds["end"] == "checkbox"
    values = {"search": "top_k", "notes": 64.0, "chords": " Am F ", "bass_root": True,
              "end": True, "seconds": "8"}  # fmt: skip
    cfg = config_from_controls(values)
    assert (cfg.chords, cfg.bass_root, cfg.end, cfg.seconds, cfg.notes) == (
        "Am F", True, True, 8.0, None)  # fmt: skip
    with pytest.raises(BadParameterError, match="^--chords: unknown chord symbol 'H7'$"):
        config_from_controls({**values, "chords": "H7"})
    with pytest.raises(BadParameterError, match="^--end: needs a length"):
        config_from_controls({**values, "seconds": ""})
