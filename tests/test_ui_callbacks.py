"""The web UI's callbacks as plain functions, driving the real Generator on a tiny model."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.errors import BadMidiError, BadParameterError, TunesmithError
from tunesmith.generation import GenerationConfig, Generator
from tunesmith.model import Transformer, preset, save_checkpoint
from tunesmith.tokenization.midi_io import grid_notes, load_midi, score_from_grid
from tunesmith.tokenization.pairs import PairTokenizer
from tunesmith.ui import audio, callbacks
from tunesmith.ui.callbacks import RunHooks
from tunesmith.ui.params import config_from_controls, control_specs, parse_prompt_notes
from tunesmith.ui.state import HISTORY_LIMIT, Session, StopFlags

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "final-fantasy-piano"


def small_params(**overrides) -> GenerationConfig:
    values = {"search": "top_k", "notes": 12, "seed": 1}
    values.update(overrides)
    return config_from_controls(values)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random-weight model that never ends a piece early, saved as a checkpoint."""
    tok = PairTokenizer()
    torch.manual_seed(0)
    model = Transformer(preset("tiny-original", tok.vocab_size), pad_id=tok.pad_id)
    with torch.no_grad():
        model.head.bias[tok.eos_id] = -1e4
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_checkpoint(path, model, tok)
    return path


@pytest.fixture(scope="module")
def gen(checkpoint) -> Generator:
    return Generator.from_pretrained(checkpoint)


@pytest.fixture
def prompt_file(tmp_path) -> Path:
    """An FF opening when the corpus is beside the repo, else a made-up one."""
    if CORPUS.is_dir():
        return sorted(CORPUS.glob("*.mid"))[0]
    path = tmp_path / "prompt.mid"
    rows = np.array([[i * 2, 60 + (i * 5) % 12, 2] for i in range(40)])
    score_from_grid(rows).dump_midi(path)
    return path


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


def notes_in(path: str | Path) -> int:
    return len(grid_notes(load_midi(Path(path))))


# --- parameters -------------------------------------------------------------


def test_only_the_chosen_search_knobs_are_passed():
    defaults = GenerationConfig()
    greedy = config_from_controls({"search": "greedy", "notes": 10, "top_k_notes": 0, "top_p": 7})
    assert greedy == GenerationConfig(search="greedy", notes=10)  # stale hidden values ignored
    top_k = config_from_controls({"search": "top_k", "notes": 10.0, "top_k_notes": 5.0,
                                  "top_k_durations": 3, "top_k_offset": 1, "top_p": 7})  # fmt: skip
    assert (top_k.top_k_notes, top_k.top_k_durations, top_k.top_k_offset) == (5, 3, 1)
    assert isinstance(top_k.notes, int) and top_k.top_p == defaults.top_p
    top_p = config_from_controls({"search": "top_p", "notes": 10, "temperature": 0.7,
                                  "top_p": 0.8, "beam_width": 0})  # fmt: skip
    assert (top_p.temperature, top_p.top_p, top_p.beam_width) == (0.7, 0.8, defaults.beam_width)
    assert config_from_controls({"search": "beam", "notes": 10, "beam_width": 3}).beam_width == 3


def test_constraints_empty_means_none():
    values = {"search": "greedy", "notes": 5, "scale": "  ", "pitch_range": "",
              "max_polyphony": 0, "max_repeat": 0.0}  # fmt: skip
    cfg = config_from_controls(values)
    assert cfg.scale is cfg.pitch_range is cfg.max_polyphony is cfg.max_repeat is None
    values.update(scale=" C:major ", pitch_range="48-84", max_polyphony=3.0)
    cfg = config_from_controls(values)
    assert (cfg.scale, cfg.pitch_range, cfg.max_polyphony) == ("C:major", "48-84", 3)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"search": "sideways", "notes": 5}, "^search: unknown search"),
        ({"search": "greedy", "notes": 0}, "^notes: must be in"),
        ({"search": "greedy", "notes": 2.5}, "^notes: 2.5 is not a whole number"),
        ({"search": "greedy", "notes": None}, "^notes: a number is needed"),
        ({"search": "greedy", "notes": 10**6}, "^notes: .* limit of 1024"),
        ({"search": "greedy", "notes": 5, "creativity": 1001}, "^creativity"),
        ({"search": "greedy", "notes": 5, "seed": -1}, "^seed"),
        ({"search": "beam", "notes": 5, "beam_width": 0}, "^beam_width"),
        ({"search": "top_p", "notes": 5, "temperature": "hot"}, "^temperature: .* not a number"),
        ({"search": "greedy", "notes": 5, "max_polyphony": -2}, "^max_polyphony"),
    ],
)
def test_bad_parameters_are_one_line_errors(values, match):
    with pytest.raises(BadParameterError, match=match) as info:
        config_from_controls(values)
    assert "\n" not in str(info.value)


def test_controls_are_the_config_knobs():
    """Every control is a GenerationConfig field with that field's default and range."""
    from dataclasses import fields

    by_name = {f.name: f for f in fields(GenerationConfig)}
    for spec in control_specs():
        knob = by_name[spec.name].metadata["knob"]
        default = by_name[spec.name].default
        assert spec.value == (default if default is not None else knob.ui_off)
        if spec.kind == "slider":
            assert knob.low <= spec.low and spec.high <= (knob.high or spec.high)
            GenerationConfig(**{spec.name: type(default)(spec.low)})  # both ends are valid
            GenerationConfig(**{spec.name: type(default)(spec.high)})
        assert spec.searches == knob.searches


def test_prompt_notes_empty_means_all():
    assert parse_prompt_notes(None) is None and parse_prompt_notes(" ") is None
    assert parse_prompt_notes(16.0) == 16
    with pytest.raises(BadParameterError):
        parse_prompt_notes(-1)


# --- uploads ----------------------------------------------------------------


def test_non_midi_upload(tmp_path):
    path = tmp_path / "song.mid"
    path.write_text("not music at all")
    with pytest.raises(BadMidiError, match="song.mid: not a MIDI file"):
        callbacks.read_upload(path)


def test_oversize_upload_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.mid"
    path.write_bytes(b"MThd" + b"\0" * (callbacks.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(BadMidiError, match="over the 10 MB limit"):
        callbacks.read_upload(path)


def test_midi_without_notes(tmp_path):
    path = tmp_path / "silence.mid"
    score_from_grid(np.zeros((0, 3))).dump_midi(path)
    with pytest.raises(BadMidiError, match="no notes"):
        callbacks.read_upload(path)


def test_vanished_upload(tmp_path):
    with pytest.raises(BadMidiError, match="upload it again"):
        callbacks.read_upload(tmp_path / "gone.mid")


def test_examples_are_a_few_sorted_midi_files(tmp_path):
    assert callbacks.list_examples(None) == {} and callbacks.list_examples(tmp_path / "no") == {}
    for i in range(9):
        (tmp_path / f"{i}.mid").write_bytes(b"MThd")
    (tmp_path / "notes.txt").write_text("x")
    found = callbacks.list_examples(tmp_path, limit=3)
    assert list(found) == ["0.mid", "3.mid", "6.mid"]


# --- generate, extend, undo ---------------------------------------------------


def test_generate_from_nothing(gen, out_dir):
    session, view = callbacks.generate(gen, Session(), None, None, None, small_params(), out_dir)
    assert len(session.history) == 1 and session.current.n_prompt_notes == 0
    sample_rate, samples = view.audio
    assert sample_rate == callbacks.AUDIO_SAMPLE_RATE and len(samples) > sample_rate // 2
    assert view.roll.dtype == np.uint8 and view.roll.ndim == 3 and view.roll.shape[2] == 3
    assert notes_in(view.midi_path) == 12 and Path(view.midi_path).parent == out_dir
    assert view.summary.startswith("12 notes (0 prompt + 12 new)") and "tokens/s" in view.summary
    assert "longest copied run" not in view.summary  # no memorisation figure: none shown
    record = json.loads(view.params_json)
    assert record["tool"] == "tunesmith generate" and record["params"]["seed"] == 1
    assert record["params"]["notes"] == 12 and record["extensions"] == []


def test_generate_from_upload_extend_and_undo(gen, prompt_file, out_dir):
    params = small_params()
    s1, v1 = callbacks.generate(gen, Session(), str(prompt_file), None, 20, params, out_dir)
    assert s1.current.n_prompt_notes == 20
    assert notes_in(v1.midi_path) == 32
    assert json.loads(v1.params_json)["prompt_name"] == prompt_file.name

    s2, v2 = callbacks.extend(gen, s1, small_params(notes=8, seed=2), out_dir)
    assert notes_in(v2.midi_path) == 40 and s2.current.n_prompt_notes == 32
    record = json.loads(v2.params_json)
    assert record["params"]["notes"] == 12 and record["extensions"][0]["params"]["seed"] == 2
    assert len(s2.history) == 2 and len(s1.history) == 1  # the old session is untouched

    s3, v3 = callbacks.undo(s2, out_dir)
    assert s3.current == s1.current and v3.midi_path == v1.midi_path
    with pytest.raises(TunesmithError, match="nothing to undo"):
        callbacks.undo(s3, out_dir)


def test_example_is_used_when_nothing_is_uploaded(gen, prompt_file, out_dir):
    session, _ = callbacks.generate(gen, Session(), None, prompt_file, 10, small_params(), out_dir)
    assert (
        session.current.n_prompt_notes == 10 and session.current.prompt["name"] == prompt_file.name
    )


def test_extend_needs_a_piece(gen, out_dir):
    with pytest.raises(TunesmithError, match="press Generate first"):
        callbacks.extend(gen, Session(), small_params(), out_dir)


def test_bad_upload_and_bad_params_leave_the_session_as_it_was(gen, tmp_path, out_dir):
    session, _ = callbacks.generate(gen, Session(), None, None, None, small_params(), out_dir)
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"hello")
    with pytest.raises(BadMidiError):
        callbacks.generate(gen, session, str(junk), None, None, small_params(), out_dir)
    # 12 pitches and the rest leave no candidate for an offset of 13: the Generator refuses.
    contradiction = small_params(top_k_offset=13, pitch_range="60-71")
    with pytest.raises(BadParameterError, match="^top_k_offset: 13 leaves no candidate"):
        callbacks.extend(gen, session, contradiction, out_dir)
    # The session still works afterwards.
    again, view = callbacks.extend(gen, session, small_params(), out_dir)
    assert len(again.history) == 2 and notes_in(view.midi_path) == 24


def test_sessions_are_isolated(gen, out_dir):
    alice, va = callbacks.generate(gen, Session(), None, None, None, small_params(seed=1), out_dir)
    bob, vb = callbacks.generate(gen, Session(), None, None, None, small_params(seed=2), out_dir)
    alice2, _ = callbacks.extend(gen, alice, small_params(), out_dir)
    assert len(alice2.history) == 2 and len(bob.history) == 1
    assert va.midi_path != vb.midi_path and alice.current.midi != bob.current.midi
    assert Session().history == ()  # a fresh tab starts empty


def test_history_is_bounded(gen, out_dir):
    session, _ = callbacks.generate(
        gen, Session(), None, None, None, small_params(notes=2), out_dir
    )
    for _ in range(HISTORY_LIMIT + 2):
        session, _ = callbacks.extend(gen, session, small_params(notes=2), out_dir)
    assert len(session.history) == HISTORY_LIMIT
    assert len(load_midi(session.current.midi).tracks[0].notes) == 2 * (HISTORY_LIMIT + 3)


def test_progress_and_stop(gen, out_dir):
    seen = []
    stop_after_three = lambda: seen[-1][0] >= 3  # noqa: E731
    session, view = callbacks.generate(
        gen, Session(), None, None, None, small_params(), out_dir,
        RunHooks(stop_after_three, lambda done, total: seen.append((done, total))),
    )  # fmt: skip
    # Progress comes after every token (a pitch, then its duration), in new notes.
    assert seen[0] == (0, 12) and seen[-1] == (3, 12) and {t for _, t in seen} == {12}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert "Stopped after 3 new notes" in view.message and "stopped early" in view.summary
    assert notes_in(view.midi_path) == 3
    # Stopped before any note: no new version, the old piece stays on screen.
    same, view = callbacks.extend(gen, session, small_params(), out_dir, RunHooks(lambda: True))
    assert same is session and "Stopped after 0 new notes" in view.message
    assert notes_in(view.midi_path) == 3


def test_stop_flags_reach_a_running_generation(gen, out_dir):
    flags = StopFlags()
    assert flags.request("tab") is False  # nothing runs: nothing to stop, nothing remembered
    results = {}
    started = threading.Event()  # a note made: Stop now leaves a piece to show

    def progress(done: int, _target: int) -> None:
        if done > 0:
            started.set()

    def work():
        hooks = RunHooks(should_stop=flags.begin("tab"), progress=progress)
        try:
            results["out"] = callbacks.generate(
                gen, Session(), None, None, None, small_params(notes=1000), out_dir, hooks
            )
        finally:
            flags.end("tab")

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(timeout=60)
    assert flags.request("other-tab") is False  # another user's Stop does not touch it
    assert flags.request("tab") is True
    thread.join(timeout=30)
    session, view = results["out"]
    assert 0 < notes_in(view.midi_path) < 1000 and "Stopped" in view.message
    assert flags.request("tab") is False


def test_memorisation_figure_is_shown_when_the_checkpoint_has_an_index(gen, out_dir, tmp_path):
    from tunesmith.evaluation.memorisation import INDEX_FILE, MemorisationIndex

    _, first = callbacks.generate(gen, Session(), None, None, None, small_params(), out_dir)
    assert "copied" not in first.summary  # no index, no claim
    piece = grid_notes(load_midi(first.midi_path))
    MemorisationIndex.build([piece], ["ff7.mid"]).save(tmp_path / INDEX_FILE)
    indexed = Generator(gen.model, gen.tokenizer, checkpoint=tmp_path, checksum=gen.checksum)
    _, view = callbacks.generate(indexed, Session(), None, None, None, small_params(), out_dir)
    assert view.summary.endswith(f"longest copied run: {len(piece)} notes, from ff7.mid")


def test_missing_soundfont_costs_only_the_audio(gen, monkeypatch, out_dir):
    monkeypatch.delenv(audio.ENV_SOUNDFONT, raising=False)
    monkeypatch.setattr(audio, "SOUNDFONT_CANDIDATES", ())
    session, view = callbacks.generate(gen, Session(), None, None, None, small_params(), out_dir)
    assert view.audio is None and "No audio: no SoundFont found" in view.message
    assert view.roll is not None and notes_in(view.midi_path) == 12


def test_same_piece_same_download_file(gen, out_dir):
    _, a = callbacks.generate(gen, Session(), None, None, None, small_params(), out_dir)
    _, b = callbacks.generate(gen, Session(), None, None, None, small_params(), out_dir)
    assert a.midi_path == b.midi_path and len(list(out_dir.iterdir())) == 1


def test_ui_json_replays_byte_for_byte_from_the_cli(gen, prompt_file, out_dir, tmp_path):
    """The UI's "Parameters (JSON)" is the CLI's sidecar: --replay remakes the piece."""
    from tunesmith.cli.main import main

    params = small_params(notes=10, pitch_range="48-84", seed=7)
    s1, v1 = callbacks.generate(gen, Session(), str(prompt_file), None, 16, params, out_dir)
    s2, v2 = callbacks.extend(gen, s1, small_params(notes=6, search="greedy"), out_dir)
    assert s1.current.n_prompt_notes == 16 and notes_in(v2.midi_path) > notes_in(v1.midi_path)
    record = json.loads(v2.params_json)
    assert record["params"]["pitch_range"] == "48-84" and record["stop_reason"] == "length"
    assert record["extensions"][0]["params"]["search"] == "greedy"

    sidecar = tmp_path / "first.json"
    sidecar.write_text(v1.params_json)
    out = tmp_path / "replayed.mid"
    argv = ["generate", "--replay", str(sidecar), "--prompt", str(prompt_file), "--out", str(out)]
    assert main(argv) == 0
    assert out.read_bytes() == s1.current.midi


def test_no_legal_note_is_said_in_the_message(gen, out_dir):
    cfg = small_params(notes=16, pitch_range="60-60").with_params(max_repeat=1)
    _, view = callbacks.generate(gen, Session(), None, None, None, cfg, out_dir)
    assert "no legal note" in view.message and "no legal note" in view.summary
    assert json.loads(view.params_json)["stop_reason"] == "no legal note"


def test_build_app_without_a_browser():
    gr = pytest.importorskip("gradio")  # the app extra, not a part of tunesmith
    from tunesmith.ui.app import build_app

    made = []
    demo = build_app(lambda: made.append(1), examples_dir=CORPUS)
    assert isinstance(demo, gr.Blocks) and made == []  # the model loads at first use, not before
    assert Path(demo.tunesmith_downloads.name).is_dir()


# --- regenerate bars ----------------------------------------------------------


@pytest.fixture
def filling_gen(gen, monkeypatch) -> Generator:
    """The tiny model's Generator with a stand-in ``infill`` (the model is not FIM-trained)."""
    from ui_fakes import fill_bars

    calls = []

    def infill(score, bars, **kwargs):
        calls.append(bars)
        return fill_bars(score, bars, **kwargs)

    monkeypatch.setattr(gen, "infill", infill, raising=False)
    monkeypatch.setattr(gen, "infill_calls", calls, raising=False)
    return gen


def test_regenerate_bars_keeps_the_rest_and_undoes(filling_gen, prompt_file, out_dir):
    from tunesmith.ui.spans import RollOptions

    roll = RollOptions(first_bar=2, last_bar=3)
    hooks = RunHooks(roll=roll)
    s1, v1 = callbacks.generate(
        filling_gen, Session(), str(prompt_file), None, 40, small_params(), out_dir, hooks
    )
    s2, v2 = callbacks.regenerate(filling_gen, s1, 2, 3.0, small_params(), out_dir, hooks)
    assert filling_gen.infill_calls == [(2, 3)] and len(s2.history) == 2
    old, new = grid_notes(load_midi(s1.current.midi)), grid_notes(load_midi(v2.midi_path))
    outside = lambda g: g[(g[:, 0] < 16) | (g[:, 0] >= 48)]  # noqa: E731
    assert np.array_equal(outside(old)[:, :2], outside(new)[:, :2])  # kept: step and pitch
    assert np.array_equal(old[old[:, 0] >= 48], new[new[:, 0] >= 48])  # after the span: exact
    assert s2.current.span == (16, 48)
    roles = np.array(list(s2.current.roles))
    in_span = (new[:, 0] >= 16) & (new[:, 0] < 48)
    assert set(roles[in_span]) == {"n"} and "n" not in set(roles[~in_span])
    assert {"p", "k"} <= set(roles[~in_span])  # the upload's notes and earlier new ones
    assert "kept +" in v2.summary and "new in bars 2-3" in v2.summary
    step = json.loads(v2.params_json)["extensions"][-1]
    assert step["action"] == "infill" and step["bars"] == [2, 3]
    assert v2.roll is not None and not np.array_equal(v1.roll, v2.roll)

    s3, v3 = callbacks.undo(s2, out_dir, roll=roll)
    assert s3.current == s1.current and v3.midi_path == v1.midi_path
    assert np.array_equal(v3.roll, v1.roll)


@pytest.mark.parametrize(
    ("first", "last", "match"),
    [
        (9, 3, "^bars 9-3: the first bar comes after the last$"),
        (0, 2, "^bars 0-2: bars are numbered from 1$"),
        (None, 2, "^bars: give the first and the last bar"),
        (0, 0, "^bars: give the first and the last bar"),
        (2.5, 3, "^bars: 2.5 is not a whole bar number$"),
        (40, 41, "^bars 40-41: the piece has only \\d+ bars$"),
    ],
)
def test_bad_span_is_a_one_line_error_and_the_piece_stays(filling_gen, out_dir, first, last, match):
    session, _ = callbacks.generate(
        filling_gen, Session(), None, None, None, small_params(), out_dir
    )
    with pytest.raises(BadParameterError, match=match):
        callbacks.regenerate(filling_gen, session, first, last, small_params(), out_dir)
    assert filling_gen.infill_calls == [] and len(session.history) == 1


def test_regenerate_needs_a_piece(filling_gen, out_dir):
    with pytest.raises(TunesmithError, match="press Generate first"):
        callbacks.regenerate(filling_gen, Session(), 1, 1, small_params(), out_dir)


def test_a_model_that_cannot_fill_in_is_refused_in_one_line(gen, out_dir, monkeypatch):
    """The tiny model has no fill-in ids: the library (or, without it, the UI) refuses."""
    from tunesmith.errors import BadCheckpointError

    session, _ = callbacks.generate(gen, Session(), None, None, None, small_params(), out_dir)
    with pytest.raises(TunesmithError) as info:
        callbacks.regenerate(gen, session, 1, 1, small_params(), out_dir)
    assert "\n" not in str(info.value) and str(info.value)
    refusal = "the model was not trained to fill in bars (no fill-in tokens)"

    def refuse(*args, **kwargs):
        raise BadCheckpointError(refusal)

    monkeypatch.setattr(gen, "infill", refuse, raising=False)
    with pytest.raises(BadCheckpointError, match=re.escape(refusal)):
        callbacks.regenerate(gen, session, 1, 1, small_params(), out_dir)
    assert len(session.history) == 1


def test_the_roll_follows_the_chosen_bars_and_the_whole_piece_toggle(gen, prompt_file, out_dir):
    from tunesmith.ui.spans import RollOptions

    session, _ = callbacks.extend(
        gen,
        callbacks.generate(gen, Session(), str(prompt_file), None, 40, small_params(), out_dir)[0],
        small_params(),
        out_dir,
    )
    assert callbacks.redraw_roll(Session(), RollOptions()) is None  # nothing to draw yet
    plain = callbacks.redraw_roll(session, RollOptions())
    chosen = callbacks.redraw_roll(session, RollOptions(first_bar=1, last_bar=1))
    half_typed = callbacks.redraw_roll(session, RollOptions(first_bar=3, last_bar=None))
    whole = callbacks.redraw_roll(session, RollOptions(whole_piece=True))
    assert np.array_equal(plain, half_typed)  # no span yet: nothing highlighted
    assert not np.array_equal(plain, chosen) and not np.array_equal(plain, whole)
