"""``--chords`` / ``--bars N --end`` from the command line and on the bundled model."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmony_checks import bass_misses, ending_misses, strong_beat_misses
from tunesmith.cli.main import main
from tunesmith.generation import Generator
from tunesmith.generation.chords import ChordChart
from tunesmith.tokenization.midi_io import grid_notes, load_midi


def test_generate_a_chart_with_an_ending_on_the_bundled_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "song.mid"
    argv = ["generate", "--chords", "Am F C G", "--bars", "8", "--end", "--seed", "1",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    grid = grid_notes(load_midi(out))
    chart = ChordChart.parse("Am F C G")
    assert len(grid) >= 16 and (grid[:, 0] + grid[:, 2]).max() == 128
    assert ending_misses(grid, tonic=9, chord_step=112) == []  # A minor: the chart's first chord
    assert strong_beat_misses(grid, chart, 0, 112) == []
    assert out.with_suffix(".json").is_file()


def test_bass_root_on_the_bundled_model() -> None:
    result = Generator.from_pretrained().generate(
        None, bars=2, chords="G/B C", bass_root=True, end=True, search="top_k", seed=2
    )
    chart = ChordChart.parse("G/B C")  # the key of the chart's first chord: G major
    assert 16 <= result.n_new_notes <= 96 and result.stop_reason == "length"
    assert bass_misses(result.grid, chart, 0, 16) == []
    assert strong_beat_misses(result.grid, chart, 0, 16) == []
    assert ending_misses(result.grid, tonic=7, chord_step=16) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chords", "Am H7", "--bars", "4"], "--chords: unknown chord symbol 'H7'"),
        (["--end"], "--end: needs a length to end at"),
        (["--end", "--notes", "32"], "--end: needs a length to end at"),
        (["--chords", "F# B", "--scale", "C:major"], "--chords: --scale and --pitch-range leave"),
        (["--chords", "C", "--pitch-range", "62-63"], "--chords: --pitch-range leaves no tone"),
        (["--bass-root"], "--bass-root: needs a chord chart"),
        (["--seconds", "0"], "--seconds: must be in (0, 3600], not 0"),
    ],
)
def test_bad_charts_and_lengths_exit_2_with_one_line(
    tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    out = tmp_path / "song.mid"
    assert main(["generate", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert list(tmp_path.iterdir()) == []  # nothing written
