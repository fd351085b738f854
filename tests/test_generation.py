"""Every search, every constraint, on random-weight tiny models: valid, constrained, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import symusic
import torch

from tunesmith.errors import BadMidiError, BadParameterError
from tunesmith.generation import GenerationConfig, Generator
from tunesmith.generation import processors as P
from tunesmith.generation.constraints import parse_pitch_range, parse_scale
from tunesmith.generation.sampler import SAMPLERS, TorchSampler, make_sampler
from tunesmith.model import Transformer, preset
from tunesmith.tokenization import PairTokenizer
from tunesmith.tokenization.midi_io import load_midi, score_from_grid

TOK = PairTokenizer()
SEARCHES = ["greedy", "top_k", "top_p", "beam"]


@pytest.fixture(scope="module", params=["tiny", "tiny-original"])
def gen(request) -> Generator:
    torch.manual_seed(0)
    return Generator(Transformer(preset(request.param, TOK.vocab_size)), TOK)


@pytest.fixture(scope="module")
def prompt() -> symusic.Score:
    rows = np.array([[0, 60, 4], [0, 48, 8], [4, 64, 4], [8, 67, 4], [12, 72, 4]])
    return score_from_grid(rows, bpm=90)


def reparse(score: symusic.Score) -> symusic.Score:
    return load_midi(score.dumps_midi())


@pytest.mark.parametrize("search", SEARCHES)
def test_every_search_honours_every_constraint(gen, prompt, search):
    res = gen.generate(prompt, search=search, notes=40, scale="D:dorian", pitch_range="50-80",
                       max_polyphony=2, creativity=300, seed=7, stop_at_eos=False)  # fmt: skip
    assert res.n_prompt_notes == 5 and res.n_new_notes == 40 and res.stop_reason == "length"
    new = res.grid[res.n_prompt_notes :]
    assert new[:, 1].min() >= 50 and new[:, 1].max() <= 80
    assert set(new[:, 1] % 12) <= parse_scale("D:dorian")
    # at most two new notes sound at any step (prompt notes have ended by then or count too)
    for step in np.unique(new[:, 0]):
        sounding = ((res.grid[:, 0] <= step) & (res.grid[:, 0] + res.grid[:, 2] > step)).sum()
        assert sounding <= 2
    assert len(reparse(res.score).tracks[0].notes) == len(res.grid)
    assert res.bpm == pytest.approx(90, abs=0.01)


@pytest.mark.parametrize("search", SEARCHES)
def test_same_seed_same_music_and_tokens_follow_the_grammar(gen, search):
    a = gen.generate(None, search=search, notes=30, seed=11)
    b = gen.generate(None, search=search, notes=30, seed=11)
    assert a.ids == b.ids and a.score.dumps_midi() == b.score.dumps_midi()
    kinds = TOK.kinds[np.array(a.new_ids)]
    body = [k for k, t in zip(kinds, a.new_ids, strict=True) if t != TOK.eos_id]
    # pitch/SEP then duration, always in pairs
    assert all(body[i + 1] == 2 for i in range(0, len(body), 2))
    # The music survives MIDI and encoding (ids may differ where the model rests twice in a
    # row: the encoder writes one longer rest).
    assert np.array_equal(TOK.decode_grid(TOK.encode(a.score)), a.grid)


def test_different_seeds_differ(gen):
    a = gen.generate(None, search="top_p", notes=40, seed=1, temperature=2.0)
    b = gen.generate(None, search="top_p", notes=40, seed=2, temperature=2.0)
    assert a.ids != b.ids


def test_beam_width_one_and_top_k_one_equal_greedy(gen, prompt):
    # The same rules for all three (greedy and beam default to repetition remedies, top-k to
    # repeated bars).
    same = {"notes": 50, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "repeat_bars": 0.0}
    greedy = gen.generate(prompt, search="greedy", **same)
    assert gen.generate(prompt, search="beam", beam_width=1, **same).ids == greedy.ids
    top_k_one = {"top_k_notes": 1, "top_k_durations": 1, "seed": 3}
    assert gen.generate(prompt, search="top_k", **top_k_one, **same).ids == greedy.ids


def test_bars_length_and_long_runs_past_the_context(gen):
    res = gen.generate(None, search="top_k", bars=3, stop_at_eos=False, seed=2)
    assert res.stop_reason == "length"
    assert res.grid[:, 0].max() < 3 * 16 + 160  # ends within one advance after 3 bars
    long = gen.generate(None, search="top_k", notes=200, stop_at_eos=False, seed=3)
    assert long.n_new_notes == 200 and len(long.ids) > gen.model.cfg.context


def test_max_repeat_caps_runs_of_one_pitch(gen):
    res = gen.generate(None, search="greedy", notes=60, max_repeat=2, stop_at_eos=False)
    pitches = res.grid[res.n_prompt_notes :, 1]
    runs = [len(list(g)) for _, g in __import__("itertools").groupby(pitches.tolist())]
    assert max(runs) <= 2


def _sep_probabilities(gen, monkeypatch, creativity):
    """Per sampled token: the separator's probability and whether another token was legal."""
    seen = []
    real = TorchSampler.pick

    def spy(self, logits):
        probs = P.softmax(logits, np.float64)[0]
        others = np.isfinite(logits[0])
        others[TOK.sep_id] = False
        seen.append((float(probs[TOK.sep_id]), bool(others.any())))
        return real(self, logits)

    monkeypatch.setattr(TorchSampler, "pick", spy)
    gen.generate(None, search="top_p", top_p=1.0, notes=30, creativity=creativity, seed=4,
                 stop_at_eos=False)  # fmt: skip
    return seen


def test_creativity_1000_gives_a_rest_no_chance_where_another_token_is_legal(gen, monkeypatch):
    seen = _sep_probabilities(gen, monkeypatch, 1000)
    assert seen and all(p == 0.0 for p, others in seen if others)
    assert any(p == 1.0 for p, others in seen if not others)  # a forced rest stays possible
    # Without the knob the same positions do give rests a chance: the test can fail.
    assert any(p > 0.0 for p, others in _sep_probabilities(gen, monkeypatch, 0) if others)


def test_callback_reports_progress_and_cancels(gen):
    seen = []

    def cb(done, total):
        seen.append((done, total))
        return done >= 5

    res = gen.generate(None, search="top_k", notes=50, stop_at_eos=False, callback=cb)
    assert res.stop_reason == "cancelled" and res.n_new_notes == 5
    assert seen[-1] == (5, 50) and all(t == 50 for _, t in seen)


def test_prompt_notes_and_long_prompt_warning(gen):
    rows = np.stack([np.arange(200) * 2, 60 + np.arange(200) % 12, np.full(200, 2)], 1)
    long_prompt = score_from_grid(rows)
    res = gen.generate(long_prompt, notes=4, seed=1, stop_at_eos=False)
    assert res.n_prompt_notes == 200 and res.warnings and "context" in res.warnings[0]
    res = gen.generate(long_prompt, prompt_notes=10, notes=4, seed=1)
    assert res.n_prompt_notes == 10 and not res.warnings
    with pytest.raises(BadParameterError, match="prompt_notes"):
        gen.generate(long_prompt, prompt_notes=-1)
    with pytest.raises(BadMidiError, match="no notes"):
        gen.generate(score_from_grid(np.zeros((0, 3))))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"search": "sideways"}, "search"),
        ({"notes": 0}, "notes"),
        ({"notes": -3}, "notes"),
        ({"bars": 0}, "bars"),
        ({"creativity": 1001}, "creativity"),
        ({"creativity": -1}, "creativity"),
        ({"top_k_notes": 0}, "top_k_notes"),
        ({"top_k_offset": -1}, "top_k_offset"),
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"beam_width": 0}, "beam_width"),
        ({"scale": "H:major"}, "scale"),
        ({"scale": "C:ultra"}, "scale"),
        ({"pitch_range": "90-40"}, "pitch_range"),
        ({"pitch_range": "10-200"}, "pitch_range"),
        ({"max_polyphony": 0}, "max_polyphony"),
        ({"max_repeat": 0}, "max_repeat"),
        ({"volume": 3}, "unknown generation parameter"),
    ],
)
def test_bad_parameters_are_one_line_errors(gen, params, match):
    with pytest.raises(BadParameterError, match=match) as err:
        gen.generate(None, **params)
    assert "\n" not in str(err.value)


def test_scale_and_range_that_leave_no_pitch_is_an_error(gen):
    with pytest.raises(BadParameterError, match="no pitch"):
        gen.generate(None, scale="C:major", pitch_range="61-61")


def test_top_k_offset_that_leaves_no_candidate_is_an_error(gen):
    with pytest.raises(BadParameterError, match="top_k_offset: 13 leaves no candidate"):
        gen.generate(None, search="top_k", top_k_offset=13, pitch_range="60-71")
    # 12 pitches and the rest: an offset of 12 still leaves the least likely one
    assert gen.generate(
        None, search="top_k", top_k_offset=12, pitch_range="60-71", notes=5
    ).n_new_notes


def test_parsers():
    assert parse_scale("C:major") == {0, 2, 4, 5, 7, 9, 11}
    assert parse_scale("A:minor") == parse_scale("C:major")
    assert parse_scale("Bb:major") == {10, 0, 2, 3, 5, 7, 9}
    assert parse_scale("F#:dorian") == {6, 8, 9, 11, 1, 3, 4}
    assert parse_pitch_range("48-84") == (48, 84)


class TestProcessors:
    def test_top_k_with_offset_keeps_ranks_offset_to_offset_plus_k(self):
        logits = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
        kept = np.isfinite(P.top_k(logits, 2, offset=1))[0].tolist()
        assert kept == [False, True, True, False, False]

    def test_top_k_offset_keeps_at_least_one_allowed(self):
        logits = np.array([[5.0, float("-inf"), 3.0, float("-inf")]], dtype=np.float32)
        kept = np.isfinite(P.top_k(logits, 3, offset=5))[0].tolist()
        assert kept == [False, False, True, False]

    def test_top_k_per_row(self):
        logits = np.tile(np.arange(10, dtype=np.float32), (2, 1))
        out = P.top_k(logits, np.array([1, 3]))
        assert np.isfinite(out).sum(-1).tolist() == [1, 3]

    def test_top_p(self):
        logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], dtype=np.float32))
        assert np.isfinite(P.top_p(logits, 0.7)).sum() == 2
        assert np.isfinite(P.top_p(logits, 0.1)).sum() == 1

    def test_rest_bias_scales_rest_probability(self):
        is_rest = np.array([False, True])
        logits = np.zeros((1, 2), dtype=np.float32)
        probs = P.softmax(logits + P.rest_bias(is_rest, 750))[0]
        assert probs[1] / probs[0] == pytest.approx(0.25)
        assert P.rest_bias(is_rest, 1000)[1] == float("-inf")

    def test_sampling_uses_the_generator(self):
        logits = np.zeros((1, 50), dtype=np.float32)
        for sampler in SAMPLERS:
            a = make_sampler(sampler, 3).pick(logits)
            assert a.tolist() == make_sampler(sampler, 3).pick(logits).tolist()

    def test_generation_config_round_trip(self):
        cfg = GenerationConfig(search="beam", bars=4, scale="C:major")
        assert cfg.notes is None
        assert GenerationConfig.from_dict(cfg.to_dict()) == cfg
