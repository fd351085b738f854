"""Guarded MIDI I/O: hostile files give one-line BadMidiErrors, never crashes or hangs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic

from conftest import make_score, note_off, note_on, raw_midi, raw_track, write_midi
from tunesmith.errors import BadMidiError, TunesmithError
from tunesmith.tokenization.midi_io import (
    MAX_TRACKS,
    grid_notes,
    load_midi,
    save_midi,
    score_bpm,
    score_from_grid,
)
from tunesmith.tokenization.pairs import PairTokenizer

ONE_NOTE = raw_track([(0, note_on(60)), (480, note_off(60))])


def bad(source: bytes | Path, name: str = "x.mid") -> str:
    """Load ``source`` expecting a BadMidiError; return its message (checked one line, named)."""
    with pytest.raises(BadMidiError) as info:
        load_midi(source, name=name)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{name}: ")
    return msg


def test_tpq_zero_is_refused() -> None:
    assert "ticks per quarter = 0" in bad(raw_midi([ONE_NOTE], tpq=0))


def test_smpte_division_is_refused() -> None:
    assert "corrupt MIDI" in bad(raw_midi([ONE_NOTE], tpq=0xE728))


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mid"
    path.write_bytes(b"")
    assert "empty file" in bad(path, "empty.mid")


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.mid"
    path.write_bytes(raw_midi([ONE_NOTE])[:-6])
    assert "corrupt MIDI" in bad(path, "cut.mid")


def test_non_midi_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mid"
    path.write_text("this is not a MIDI file\n")
    assert "not a MIDI file" in bad(path, "notes.mid")


def test_missing_path_and_folder(tmp_path: Path) -> None:
    assert "no such file" in bad(tmp_path / "nope.mid", "nope.mid")
    assert "is a folder" in bad(tmp_path, "dir")


def test_header_only_gives_no_notes() -> None:
    score = load_midi(raw_midi([raw_track([])]))
    assert len(grid_notes(score)) == 0
    assert PairTokenizer().encode(score) == [1, 0]  # just the BOS PAD prefix


def test_huge_delta_time_is_refused_quickly() -> None:
    far = raw_track([(0, note_on(60)), (0x0FFFFFFF, note_off(60)), (0x0FFFFFFF, note_on(62))])
    assert "too long" in bad(raw_midi([far]))


def test_notes_that_never_end_do_not_crash() -> None:
    dangling = raw_track([(0, note_on(60)), (480, note_on(64)), (480, note_on(67))])
    score = load_midi(raw_midi([dangling]))
    ids = PairTokenizer().encode(score)
    assert isinstance(ids, list)  # whatever symusic keeps, encoding works


def test_too_many_tracks_is_refused() -> None:
    assert "too many tracks" in bad(raw_midi([ONE_NOTE] * (MAX_TRACKS + 1)))


def test_many_tracks_under_the_limit_are_merged() -> None:
    tracks = [
        raw_track([(i * 10, note_on(40 + i % 40)), (120, note_off(40 + i % 40))])
        for i in range(300)
    ]
    score = load_midi(raw_midi(tracks))
    assert len(grid_notes(score)) > 0


def test_header_track_count_mismatch_loads() -> None:
    score = load_midi(raw_midi([ONE_NOTE], n_tracks=50))
    assert len(grid_notes(score)) == 1


def test_random_bytes_after_header_never_crash() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        body = rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
        data = raw_midi([]) + b"MTrk" + len(body).to_bytes(4, "big") + body
        try:
            load_midi(data, name="fuzz.mid")
        except BadMidiError as err:
            assert "\n" not in str(err)


def test_grid_notes_drops_drums_and_out_of_range_and_orders_high_to_low() -> None:
    score = make_score(
        [(0, 60, 480), (0, 72, 240), (0, 10, 480), (480, 64, 120), (0, 60, 120)],
        [(0, 36, 480)],
        drum_tracks=[1],
    )
    rows = grid_notes(score).tolist()
    # (step, pitch, dur): drum and pitch 10 dropped, the duplicate 60 keeps the longer.
    assert rows == [[0, 72, 2], [0, 60, 4], [4, 64, 1]]


def test_save_midi_sets_bpm_and_program(tmp_path: Path) -> None:
    score = score_from_grid(np.array([[0, 60, 4], [4, 64, 8]]), bpm=100)
    path = save_midi(score, tmp_path / "out.mid", bpm=87.5)
    back = load_midi(path)
    assert score_bpm(back) == pytest.approx(87.5, abs=0.01)
    assert back.tracks[0].program == 0
    assert grid_notes(back).tolist() == [[0, 60, 4], [4, 64, 8]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mid"]  # no temp file left


def test_save_midi_keeps_the_prompt_tempo(tmp_path: Path) -> None:
    path = write_midi(tmp_path / "in.mid", [(0, 60, 480)], bpm=93)
    back = load_midi(save_midi(load_midi(path), tmp_path / "out.mid"))
    assert score_bpm(back) == pytest.approx(93, abs=0.01)


def test_save_midi_refuses_bad_bpm_and_missing_folder(tmp_path: Path) -> None:
    score = score_from_grid(np.array([[0, 60, 4]]))
    with pytest.raises(TunesmithError, match="--bpm"):
        save_midi(score, tmp_path / "x.mid", bpm=0)
    with pytest.raises(TunesmithError, match="does not exist"):
        save_midi(score, tmp_path / "missing" / "x.mid")


def test_score_from_grid_never_wraps_ticks() -> None:
    # Hours of decoded silence would overflow symusic's int32 ticks; such notes are dropped.
    score = score_from_grid(np.array([[0, 60, 4], [20_000_000, 62, 4]]))
    times = [n.time for n in score.tracks[0].notes]
    assert times == [0]
    symusic.Score.from_midi(score.dumps_midi())
