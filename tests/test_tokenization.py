"""Tokenizers: round trips on the real corpora, garbage-proof decoding, JSON save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import symusic
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_score
from tunesmith.errors import TunesmithError
from tunesmith.tokenization import build_tokenizer, load_tokenizer, tokenizer_from_dict
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.midi_io import grid_notes, load_midi
from tunesmith.tokenization.miditok_adapter import MidiTokTokenizer
from tunesmith.tokenization.pairs import MAX_NOTE_STEPS, PairTokenizer


def midi_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mid", ".midi"))


@pytest.fixture(scope="session")
def tokenizers() -> dict[str, Tokenizer]:
    return {name: build_tokenizer(name) for name in ("pairs", "remi", "tsd")}


# --- seed: round trips on the corpora ---------------------------------------------------


def check_seed_round_trip(path: Path) -> None:
    tok = PairTokenizer()
    score = load_midi(path)
    ids = tok.encode(score)
    expected = grid_notes(score)
    expected[:, 2] = np.minimum(expected[:, 2], MAX_NOTE_STEPS)
    decoded = tok.decode(ids)
    # Every in-range non-drum note keeps its pitch, quantised onset and (capped) duration.
    np.testing.assert_array_equal(grid_notes(decoded), expected, err_msg=path.name)
    assert tok.encode(decoded) == ids, path.name


def test_seed_round_trip_all_final_fantasy_files(ff_dir: Path) -> None:
    files = midi_files(ff_dir)
    assert len(files) == 92
    for path in files:
        check_seed_round_trip(path)


def test_seed_round_trip_pop909_sample(pop909_dir: Path) -> None:
    files = midi_files(pop909_dir)
    sample = files[:: max(1, len(files) // 50)][:50]  # every 18th file: spread over the corpus
    assert len(sample) == 50
    for path in sample:
        check_seed_round_trip(path)


# --- remi / tsd round trips -----------------------------------------------------------


def note_rows(score: symusic.Score) -> list[tuple[int, int, int, int]]:
    rows = []
    for track in score.tracks:
        a = track.notes.numpy()
        rows += zip(
            a["time"].tolist(),
            a["pitch"].tolist(),
            a["duration"].tolist(),
            a["velocity"].tolist(),
            strict=True,
        )
    return sorted(rows)


@pytest.mark.parametrize("name", ["remi", "tsd"])
def test_miditok_round_trip_on_corpus_files(
    name: str, tokenizers: dict, ff_dir: Path, pop909_dir: Path
) -> None:
    tok = tokenizers[name]
    files = midi_files(ff_dir)[::30] + midi_files(pop909_dir)[:2]  # pop909: three tracks each
    for path in files:
        score = load_midi(path)
        ids = tok.encode(score)
        assert ids[0] == tok.bos_id
        decoded = tok.decode(ids)
        assert len(decoded.tracks) == 1
        # Notes survive up to miditok's own quantisation (time grid, velocity bins, durations).
        expected = tok.preprocess(score)
        assert note_rows(decoded.resample(expected.tpq)) == note_rows(expected), path.name
        assert tok.encode(decoded) == ids, path.name


def test_miditok_merges_tracks_and_drops_drums(tokenizers: dict) -> None:
    score = make_score(
        [(0, 60, 480), (960, 62, 480)], [(480, 48, 480)], [(0, 36, 240)], drum_tracks=[2]
    )
    for name in ("remi", "tsd"):
        tok = tokenizers[name]
        out = tok.decode(tok.encode(score))
        assert [(n.pitch, n.time) for n in out.tracks[0].notes] == [(60, 0), (48, 480), (62, 960)]
        assert tok.count_notes(tok.encode(score)) == 3


# --- vocabulary and kinds ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["pairs", "remi", "tsd"])
def test_vocab_and_kinds(name: str, tokenizers: dict) -> None:
    tok = tokenizers[name]
    assert tok.vocab_size % 8 == 0 and tok.kinds.shape == (tok.vocab_size,)
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert all(tok.kinds[i] == TokenKind.SPECIAL for i in (tok.pad_id, tok.bos_id, tok.eos_id))
    pitch_names = {tok.token_str(int(i)) for i in np.flatnonzero(tok.kinds == TokenKind.PITCH)}
    expected = range(128) if name == "pairs" else range(21, 109)
    assert pitch_names == {f"Pitch_{p}" for p in expected}
    assert (tok.kinds == TokenKind.DURATION).any()


@pytest.mark.parametrize("name", ["remi", "tsd"])
def test_miditok_kinds_and_padding(name: str, tokenizers: dict) -> None:
    tok = tokenizers[name]
    n = len(tok.miditok)
    assert tok.vocab_size - 8 < n <= tok.vocab_size
    assert (tok.kinds[n:] == TokenKind.OTHER).all()
    for i in range(n):
        kind = tok.token_str(i).split("_")[0]
        want = {
            "Pitch": TokenKind.PITCH,
            "Duration": TokenKind.DURATION,
            "TimeShift": TokenKind.SEPARATOR,
            "Rest": TokenKind.SEPARATOR,
            "PAD": TokenKind.SPECIAL,
            "BOS": TokenKind.SPECIAL,
            "EOS": TokenKind.SPECIAL,
        }.get(kind, TokenKind.OTHER)
        assert tok.kinds[i] == want, tok.token_str(i)
    # Padding ids decode to nothing.
    assert len(tok.decode(list(range(n, tok.vocab_size))).tracks[0].notes) == 0


def test_unknown_tokenizer_name() -> None:
    with pytest.raises(TunesmithError, match="unknown tokenizer"):
        build_tokenizer("abc")


# --- any ids decode to a valid MIDI -----------------------------------------------------


@st.composite
def id_sequences(draw: st.DrawFn, tok: Tokenizer) -> list[int]:
    """Pure garbage mixed with runs of plausible tokens (so decoding goes deep)."""
    by_kind = [np.flatnonzero(tok.kinds == k).tolist() for k in TokenKind]
    any_id = st.integers(-3, tok.vocab_size + 3)
    plausible = st.sampled_from([i for ids in by_kind for i in ids])
    pitch, other, dur = (
        st.sampled_from(by_kind[k] or [0])
        for k in (TokenKind.PITCH, TokenKind.OTHER, TokenKind.DURATION)
    )
    note = st.one_of(st.tuples(pitch, dur), st.tuples(pitch, other, dur))  # seed; remi/tsd
    runs = st.one_of(any_id.map(lambda i: [i]), plausible.map(lambda i: [i]), note.map(list))
    parts = draw(st.lists(runs, max_size=120))
    return [i for part in parts for i in part]


def check_valid_midi(tok: Tokenizer, ids: list[int]) -> None:
    score = tok.decode(ids)
    assert len(score.tracks) == 1 and not score.tracks[0].is_drum
    data = score.dumps_midi()
    back = load_midi(data, name="decoded.mid")  # passes tunesmith's own guards too
    assert sum(len(t.notes) for t in back.tracks) == len(score.tracks[0].notes)
    for n in score.tracks[0].notes:
        assert n.time >= 0 and n.duration > 0 and 0 <= n.pitch <= 127


@pytest.mark.parametrize("name", ["pairs", "remi", "tsd"])
def test_any_ids_decode_to_valid_midi(name: str, tokenizers: dict) -> None:
    tok = tokenizers[name]

    @settings(max_examples=150, deadline=None)
    @given(id_sequences(tok))
    def prop(ids: list[int]) -> None:
        check_valid_midi(tok, ids)

    prop()


def test_decode_with_bpm(tokenizers: dict) -> None:
    for tok in tokenizers.values():
        assert tok.decode([], bpm=77).tempos[0].qpm == pytest.approx(77, abs=0.01)


# --- save / load ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pairs", "remi", "tsd"])
def test_tokenizer_json_round_trip(
    name: str, tokenizers: dict, tmp_path: Path, ff_dir: Path
) -> None:
    tok = tokenizers[name]
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert json.loads(json.dumps(again.to_dict())) == json.loads(json.dumps(tok.to_dict()))
    score = load_midi(midi_files(ff_dir)[0])
    assert again.encode(score) == tok.encode(score)
    assert (again.kinds == tok.kinds).all()


def test_bpe_train_save_load(tmp_path: Path, ff_dir: Path) -> None:
    files = midi_files(ff_dir)
    tok = MidiTokTokenizer("tsd", bpe_vocab_size=400)
    tok.train_bpe(files[:12])
    assert tok.is_trained and tok.vocab_size == 400
    score = load_midi(files[50])
    ids = tok.encode(score)
    base = MidiTokTokenizer("tsd").encode(score)
    assert len(ids) < len(base)
    assert tok.count_notes(ids) == MidiTokTokenizer("tsd").count_notes(base)
    assert tok.encode(tok.decode(ids)) == ids
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert isinstance(again, MidiTokTokenizer) and again.is_trained
    assert again.encode(score) == ids and (again.kinds == tok.kinds).all()
    check_valid_midi(again, list(range(again.vocab_size)))


def test_load_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(TunesmithError, match="cannot read tokenizer"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "t.json").write_text('{"type": "nope"}')
    with pytest.raises(TunesmithError, match="unknown tokenizer type"):
        load_tokenizer(tmp_path / "t.json")
    with pytest.raises(TunesmithError, match="not a remi/tsd"):
        MidiTokTokenizer.from_dict({"type": "remi"})


def test_miditok_decode_survives_int32_overflow(tokenizers: dict) -> None:
    # 400k of the longest time shifts is ~4.8M beats: past int32 ticks at 480 per quarter.
    tok = tokenizers["tsd"]
    vocab = tok.miditok.vocab
    note = [vocab["Pitch_60"], vocab["Velocity_63"], vocab["Duration_1.0.8"]]
    score = tok.decode(note + [vocab["TimeShift_12.0.4"]] * 400_000 + note)
    assert [(n.time, n.pitch) for n in score.tracks[0].notes] == [(0, 60)]
    symusic.Score.from_midi(score.dumps_midi())
