"""Infilling end to end: ``Generator.infill`` for every search, the gap rule, ``tunesmith infill``.

Random weights are enough here: what is tested is what the rules guarantee whatever the
model says (notes outside the span kept, the fill inside it and ending exactly at its
end). Whether a model learns to fill is ``test_infill.py``'s slow training test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.cli.main import main
from tunesmith.data.infill import infill_prompt
from tunesmith.errors import BadCheckpointError, BadParameterError
from tunesmith.generation import GenerationConfig, Generator
from tunesmith.generation.grammar import PairGrammar
from tunesmith.generation.infill_rule import GapRule
from tunesmith.model import Transformer, preset, save_checkpoint
from tunesmith.tokenization.midi_io import grid_notes, load_midi, score_from_grid
from tunesmith.tokenization.pairs import (
    DUR_OFFSET,
    EOS,
    FILL_END,
    MAX_NOTE_STEPS,
    PITCH_OFFSET,
    SEP,
    PairTokenizer,
)

TOK = PairTokenizer(infill=True)
SPAN_BARS = (3, 4)
START, STOP = 32, 64


def piece_rows() -> np.ndarray:
    """Six bars: a bass held over each bar line, a melody, a note held into and past the span."""
    rng = np.random.default_rng(3)
    rows = [[0, 36, 96]]  # held from bar 1 over the whole span and beyond
    for b in range(6):
        rows.append([b * 16, 40 + b, 20])  # each bass note is held into the next bar
        rows += [[b * 16 + s, 60 + int(rng.integers(12)), 4] for s in range(0, 16, 4)]
    rows.append([28, 84, 12])  # held from bar 2 into the span
    rows.append([60, 86, 10])  # starts in the span, sounds past it: regenerated
    return np.array(rows)


@pytest.fixture(scope="module")
def piece():
    return score_from_grid(piece_rows(), bpm=96)


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(0)
    return Generator(Transformer(preset("tiny", TOK.vocab_size, context=256), pad_id=0), TOK)


def expected_kept(grid: np.ndarray) -> np.ndarray:
    """The notes outside the span as they must come back: those held into it cut at its start."""
    out = grid[(grid[:, 0] < START) | (grid[:, 0] >= STOP)].copy()
    before = out[:, 0] < START
    out[before, 2] = np.minimum(out[before, 2], START - out[before, 0])
    return out


def advance(ids: list[int]) -> list[int]:
    """The running time (steps) after each SEP pair of seed ids."""
    steps, now = [], 0
    for a, b in zip(ids, ids[1:], strict=False):
        if a == SEP:
            now += b - DUR_OFFSET
            steps.append(now)
    return steps


def check_fill(res, original: np.ndarray, gap: int = STOP - START) -> None:
    """Everything infill promises about a result, for any search."""
    assert res.span == (START, STOP) and res.stop_reason == "length"
    grid = res.grid
    assert (np.diff(grid[:, 0]) >= 0).all()  # sorted by onset
    inside = (grid[:, 0] >= START) & (grid[:, 0] < STOP)
    kept = grid[~inside]
    assert kept.tolist() == sorted(
        expected_kept(original).tolist(), key=lambda r: (r[0], -r[1], -r[2])
    )
    untouched = original[original[:, 0] + original[:, 2] <= START]  # ended before: byte for byte
    assert all(row in kept.tolist() for row in untouched.tolist())
    new = grid[inside]
    assert res.n_new_notes == len(new) >= 1 and res.n_prompt_notes == len(kept)
    assert (new[:, 0] + new[:, 2] <= STOP).all() and (new[:, 2] >= 1).all()
    assert (new[:, 2] <= MAX_NOTE_STEPS).all()
    middle = res.new_ids
    assert middle[-1] == FILL_END and FILL_END not in middle[:-1]
    assert all(t < DUR_OFFSET + 161 for t in middle[:-1]) and EOS not in middle  # no special
    waits = advance(middle[:-1])
    assert waits and waits[-1] == gap and all(w <= gap for w in waits)  # never past, never short
    body = TOK.decode_grid(middle[:-1])
    assert (body + [START, 0, 0]).tolist() == sorted(
        new.tolist(), key=lambda r: (r[0], -r[1], -r[2])
    )
    assert grid_notes(res.score).tolist() == grid.tolist()


@pytest.mark.parametrize(
    "params",
    [
        {"search": "greedy"},
        {"search": "top_k", "seed": 4, "creativity": 300},
        {"search": "top_p", "seed": 1, "scale": "C:major", "pitch_range": "55-80"},
        {"search": "beam", "beam_width": 3, "max_polyphony": 2},
    ],
    ids=lambda p: p["search"],
)
def test_every_search_keeps_the_outside_and_fills_the_gap_exactly(gen, piece, params) -> None:
    res = gen.infill(piece, bars=SPAN_BARS, notes=3, **params)  # the length knob is overridden
    check_fill(res, grid_notes(piece))
    assert res.config.bars == 2 and res.config.stop_at_eos is False
    new = res.grid[(res.grid[:, 0] >= START) & (res.grid[:, 0] < STOP)]
    if "scale" in params:
        assert np.isin(new[:, 1] % 12, [0, 2, 4, 5, 7, 9, 11]).all()
        assert ((new[:, 1] >= 55) & (new[:, 1] <= 80)).all()
    if "max_polyphony" in params:
        for t in range(START, STOP):
            assert ((new[:, 0] <= t) & (new[:, 0] + new[:, 2] > t)).sum() <= 2


def test_infill_is_deterministic_and_takes_a_path(gen, piece, tmp_path: Path) -> None:
    path = tmp_path / "p.mid"
    piece.dump_midi(str(path))
    a = gen.infill(path, bars=(2, 2), search="top_k", seed=9)
    b = gen.infill(load_midi(path), bars=(2, 2), search="top_k", seed=9)
    assert a.ids == b.ids and a.grid.tolist() == b.grid.tolist() and a.span == (16, 32)
    assert gen.infill(path, bars=(6, 6), search="greedy").span == (80, 96)  # the last bar


def walk(rule: GapRule, prompt: list[int], rng: np.random.Generator) -> list[int]:
    """Uniformly random legal ids under the grammar and the gap rule until the gap is used up."""
    cfg = GenerationConfig(bars=2, stop_at_eos=False, max_polyphony=3)
    grammar = PairGrammar(TOK, cfg, [rule])
    grammar.feed_prompt(prompt)
    out: list[int] = []
    while not grammar.done(cfg)[0]:
        legal = np.flatnonzero(grammar.allowed()[0])
        assert len(legal) and FILL_END not in legal and EOS not in legal
        out.append(int(rng.choice(legal)))
        grammar.update(np.array(out[-1:]))
    assert np.flatnonzero(grammar.allowed()[0]).tolist() == [FILL_END]
    return out


def test_random_walks_under_the_gap_rule_always_end_exactly_at_the_gap() -> None:
    prompt = infill_prompt(grid_notes(score_from_grid(piece_rows())), SPAN_BARS)
    rule, rng = GapRule(prompt.gap, TOK.vocab_size), np.random.default_rng(0)
    for _ in range(60):
        ids = walk(rule, prompt.ids, rng)
        waits = advance(ids)
        assert waits[-1] == prompt.gap and ids[-2] == SEP  # it ends on the rest that closes it
        notes = TOK.decode_grid(ids)
        assert (notes[:, 0] + notes[:, 2] <= prompt.gap).all()


def test_middle_restarts_the_grammar_time() -> None:
    """After the suffix, MIDDLE starts at step 0 with nothing sounding and any pitch open."""
    prompt = infill_prompt(piece_rows(), SPAN_BARS)
    grammar = PairGrammar(TOK, GenerationConfig(max_polyphony=1))
    grammar.feed_prompt(prompt.ids)
    assert grammar.step[0] == 0 and grammar.sounding == [[]] and grammar.low[0] == 1000
    assert grammar.allowed()[0, PITCH_OFFSET + 100]  # polyphony 1 and any pitch: nothing sounds


def test_a_model_without_infill_ids_is_refused(piece) -> None:
    old = Generator(Transformer(preset("tiny", PairTokenizer().vocab_size)), PairTokenizer())
    with pytest.raises(BadCheckpointError, match="not trained for infilling.*--fim-rate"):
        old.infill(piece, bars=(1, 2))


@pytest.mark.parametrize(
    ("bars", "needle"),
    [
        ((9, 3), "--bars 9-3"),
        ((0, 2), "--bars 0-2"),
        ((5, 9), "only 7 bars"),
        ((3,), "bars: give the span"),
        ("5-8", "bars: give the span"),
    ],
)
def test_bad_spans_are_one_line_errors_naming_bars(gen, piece, bars, needle) -> None:
    with pytest.raises(BadParameterError, match=needle) as err:
        gen.infill(piece, bars=bars)
    assert "\n" not in str(err.value)


def test_a_gap_too_long_for_the_context_is_refused() -> None:
    small = Generator(Transformer(preset("tiny", TOK.vocab_size, context=8), pad_id=0), TOK)
    long_piece = score_from_grid(np.array([[0, 60, 4], [24 * 16, 62, 4]]))
    with pytest.raises(BadParameterError, match="bars: 1-24 .* no room for a note"):
        small.infill(long_piece, bars=(1, 24))


# --- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_checkpoint(root / "fim", Transformer(preset("tiny", 304, context=256)), TOK)
    save_checkpoint(root / "old", Transformer(preset("tiny", 296)), PairTokenizer())
    return {"fim": root / "fim", "old": root / "old"}


def test_cli_infill_writes_midi_and_sidecar_and_replays(tmp_path: Path, models, capsys) -> None:
    song = tmp_path / "song.mid"
    score_from_grid(piece_rows(), bpm=96).dump_midi(str(song))
    out = tmp_path / "new.mid"
    args = ["infill", str(song), "--bars", "3-4", "--model", str(models["fim"]), "--out", str(out)]
    assert main([*args, "--search", "top_p", "--seed", "3"]) == 0
    assert "bars 3-4" in capsys.readouterr().out
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["tool"] == "tunesmith infill" and record["params"]["seed"] == 3
    assert record["infill"] == {"bars": [3, 4], "span": [START, STOP]}
    assert record["prompt_path"] == str(song.resolve()) and record["prompt_sha256"]
    grid = grid_notes(load_midi(out))
    kept = grid[(grid[:, 0] < START) | (grid[:, 0] >= STOP)]
    assert kept.tolist() == expected_kept(grid_notes(load_midi(song))).tolist()
    again = tmp_path / "again.mid"
    assert main(["infill", "--replay", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert main(["generate", "--replay", str(out.with_suffix(".json")), "--out", str(again)]) == 2
    assert "tunesmith infill --replay" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--bars", "9-3"], "--bars 9-3"),
        (["--bars", "8-9"], "only 7 bars"),
        (["--bars", "x"], "--bars x"),
        ([], "--bars: give the bars"),
        (["--bars", "2", "--model", "old"], "not trained for infilling"),
        (["--bars", "2", "--search", "beam", "--beam-width", "0"], "--beam-width"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_nothing_written(
    tmp_path: Path, models, capsys, extra, needle
) -> None:
    song = tmp_path / "song.mid"
    score_from_grid(piece_rows()[:-2], bpm=96).dump_midi(str(song))
    out = tmp_path / "new.mid"
    if "--model" in extra:
        extra = [*extra[:-1], str(models[extra[-1]])]
    else:
        extra = [*extra, "--model", str(models["fim"])]
    assert main(["infill", str(song), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_music_cut_to_fit_the_context_is_a_warning(piece) -> None:
    """A small context sees the part nearest the span, says so, and still fills exactly."""
    small = Generator(Transformer(preset("tiny", TOK.vocab_size, context=48), pad_id=0), TOK)
    res = small.infill(piece, bars=SPAN_BARS, search="top_k", seed=2)
    assert any("the model sees the part nearest the span" in w for w in res.warnings)
    assert len(res.ids) - len(res.new_ids) <= 24  # the prompt took at most half the context
    check_fill(res, grid_notes(piece))


def test_a_cancelled_fill_keeps_the_outside_and_has_no_fill_end(gen, piece) -> None:
    res = gen.infill(piece, bars=SPAN_BARS, search="greedy", callback=lambda done, total: True)
    assert res.stop_reason == "cancelled" and FILL_END not in res.ids and res.span == (32, 64)
    grid = res.grid
    kept = grid[(grid[:, 0] < START) | (grid[:, 0] >= STOP)]
    assert sorted(kept.tolist()) == sorted(expected_kept(grid_notes(piece)).tolist())


@pytest.fixture(scope="module")
def bundled() -> Generator:
    return Generator.from_pretrained(backend="torch")


@pytest.mark.parametrize("search", ["greedy", "top_k", "top_p", "beam"])
def test_the_bundled_model_fills_bars_with_every_search(bundled, piece, search) -> None:
    """The bundled model was fine-tuned with fill-in-the-middle windows: it fills for real."""
    res = bundled.infill(piece, bars=SPAN_BARS, search=search, seed=2, beam_width=4)
    check_fill(res, grid_notes(piece))
