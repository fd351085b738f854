"""``repeat_bars``: planned bars repeat an earlier bar note for note, by the seed's coins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import make_score
from tunesmith.errors import BadParameterError
from tunesmith.evaluation.texture import repeated_bar_rate
from tunesmith.generation.bar_repeat import BarRepeat
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.generator import Generator
from tunesmith.generation.note_rules import check_pairs_encoding
from tunesmith.generation.record import load_record
from tunesmith.model import Transformer, preset
from tunesmith.tokenization.pairs import DUR_OFFSET, PITCH_OFFSET, SEP, PairTokenizer

TOK = PairTokenizer()
MOTIF = [(0, 64, 4), (0, 60, 4), (4, 67, 2), (6, 65, 2), (8, 62, 8)]  # (step, pitch, dur)
OTHER = [(2, 72, 2), (8, 48, 8)]  # first note at step 2


def ids_of(notes: list[tuple[int, int, int]]) -> list[int]:
    return TOK.encode_grid(np.array(notes, dtype=np.int64)).tolist()


def shifted(notes: list[tuple[int, int, int]], bars: int) -> list[tuple[int, int, int]]:
    return [(s + 16 * bars, p, d) for s, p, d in notes]


def allowed(rule: BarRepeat, row: int = 0) -> list[int]:
    mask = np.ones((len(rule.rows), TOK.vocab_size), dtype=bool)
    return np.flatnonzero(rule.restrict(None, mask)[row]).tolist()  # type: ignore[arg-type]


def take(rule: BarRepeat, *tokens: int) -> None:
    for t in tokens:
        rule.update(None, np.full(len(rule.rows), t))  # type: ignore[arg-type]


def test_a_planned_bar_starts_any_earlier_bar_then_follows_the_one_chosen() -> None:
    rule = BarRepeat(1.0, 0, ids_of(MOTIF + shifted(OTHER, 1)) + [SEP, DUR_OFFSET + 8])
    # at bar 2's start: bar 1 back begins with a rest to step 2, bar 2 back with pitch 64
    assert allowed(rule) == [SEP, PITCH_OFFSET + 64]
    take(rule, PITCH_OFFSET + 64)
    assert allowed(rule) == [DUR_OFFSET + 4]
    take(rule, DUR_OFFSET + 4)
    assert allowed(rule) == [PITCH_OFFSET + 60]  # the motif, note for note
    take(rule, PITCH_OFFSET + 60, DUR_OFFSET + 4, SEP, DUR_OFFSET + 4, PITCH_OFFSET + 67)
    take(rule, DUR_OFFSET + 2, SEP, DUR_OFFSET + 2, PITCH_OFFSET + 65, DUR_OFFSET + 2)
    take(rule, SEP, DUR_OFFSET + 2, PITCH_OFFSET + 62, DUR_OFFSET + 8)
    assert allowed(rule) == [SEP]  # the bar is complete: on to the next bar's first note
    take(rule, SEP)
    assert allowed(rule) == [DUR_OFFSET + 10]  # bar 1 (two back) was followed by OTHER's 72 at 2


def test_an_unplanned_bar_and_a_bar_already_past_its_first_note_are_free() -> None:
    free = BarRepeat(0.0, 0, ids_of(MOTIF) + [SEP, DUR_OFFSET + 8])
    assert len(allowed(free)) == TOK.vocab_size
    late = BarRepeat(1.0, 0, ids_of(MOTIF) + [SEP, DUR_OFFSET + 10])  # bar 1 at step 2
    assert len(allowed(late)) == TOK.vocab_size  # the motif's first note (step 0) is behind
    assert late.given_up == [1]


def test_a_repeat_the_other_rules_forbid_is_given_up() -> None:
    rule = BarRepeat(1.0, 0, ids_of(MOTIF) + [SEP, DUR_OFFSET + 8])
    mask = np.ones((1, TOK.vocab_size), dtype=bool)
    mask[0, PITCH_OFFSET + 64] = False  # say, the copy guard
    assert np.array_equal(rule.restrict(None, mask), mask)  # type: ignore[arg-type]
    assert rule.given_up == [1]


def test_the_plan_depends_on_the_seed_and_the_bar_only() -> None:
    a, b = BarRepeat(0.5, 7, []), BarRepeat(0.5, 7, [1, 2])
    plan = [a.planned(bar) for bar in range(64)]
    assert plan == [b.planned(bar) for bar in range(64)]
    assert 16 < sum(plan) < 48
    assert plan != [BarRepeat(0.5, 8, []).planned(bar) for bar in range(64)]


def test_beam_rows_keep_their_own_notes() -> None:
    rule = BarRepeat(1.0, 0, ids_of(MOTIF) + [SEP, DUR_OFFSET + 8])
    rule.reorder(np.zeros(2, dtype=np.int64))
    rule.update(None, np.array([PITCH_OFFSET + 64, SEP]))  # type: ignore[arg-type]
    assert allowed(rule, 0) == [DUR_OFFSET + 4]
    assert len(allowed(rule, 1)) == TOK.vocab_size  # a rest at step 0: bar 1 starts there
    assert rule.given_up == [-1, 1]


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(0)
    return Generator(Transformer(preset("tiny", TOK.vocab_size)).eval(), TOK)


def test_every_planned_bar_of_a_piece_repeats(gen: Generator) -> None:
    prompt = make_score([(s * 120, p, d * 120) for s, p, d in MOTIF])
    params = {"search": "top_k", "notes": 40, "max_copy": 0, "stop_at_eos": False, "seed": 3}
    res = gen.generate(prompt, repeat_bars=1.0, **params)
    assert repeated_bar_rate(res.grid) >= 0.5
    again = gen.generate(prompt, repeat_bars=1.0, **params)
    assert np.array_equal(res.grid, again.grid)  # the same seed, the same music
    assert repeated_bar_rate(gen.generate(prompt, repeat_bars=0.0, **params).grid) < 0.5
    beam = gen.generate(prompt, repeat_bars=1.0, search="beam", beam_width=3, notes=24,
                        max_copy=0, stop_at_eos=False)  # fmt: skip
    assert beam.n_new_notes == 24


def test_sampling_defaults_to_repeats_and_old_sidecars_replay_without(tmp_path) -> None:
    assert GenerationConfig(search="top_k").resolved().repeat_bars == 0.2
    assert GenerationConfig(search="greedy").resolved().repeat_bars == 0.0
    (tmp_path / "old.json").write_text('{"tool": "tunesmith generate", "params": {"notes": 5}}')
    assert load_record(tmp_path / "old.json").config.repeat_bars == 0.0


def test_bad_values_and_other_tokenizers_are_refused() -> None:
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(BadParameterError, match="repeat_bars"):
            GenerationConfig(repeat_bars=bad)
    with pytest.raises(BadParameterError, match="^repeat_bars: needs a model with the pairs"):
        check_pairs_encoding(GenerationConfig(repeat_bars=0.5), pairs_encoding=False)


def runs_of(plan: list[bool]) -> list[int]:
    """Lengths of the runs of planned bars."""
    out, n = [], 0
    for p in [*plan, False]:
        if p:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_planned_bars_come_in_runs_that_keep_the_share() -> None:
    # run 1: each bar's coin alone, as before the knob (a bar's coin: the seed and its index).
    alone = BarRepeat(0.3, 5, [], run=1.0)
    coins = [np.random.default_rng([5, b]).random() < 0.3 for b in range(200)]
    assert [alone.planned(b) for b in range(200)] == coins
    for run in (2.0, 4.0):
        rule = BarRepeat(0.2, 7, [], run=run)
        plan = [rule.planned(b) for b in range(20_000)]
        assert np.mean(plan) == pytest.approx(0.2, abs=0.02)
        assert np.mean(runs_of(plan)) == pytest.approx(run, rel=0.1)
        assert BarRepeat(0.2, 7, [], run=run).planned(19_999) == plan[-1]  # the seed's plan
    assert all(BarRepeat(1.0, 1, [], run=4.0).planned(b) for b in range(50))


def test_pieces_differ_in_how_much_they_repeat_with_runs() -> None:
    def spread(run: float) -> float:
        shares = [np.mean([BarRepeat(0.2, s, [], run).planned(b) for b in range(24)])
                  for s in range(300)]  # fmt: skip
        return float(np.std(shares))

    assert spread(4.0) > 1.5 * spread(1.0)


def test_older_sidecars_replay_with_independent_bars(tmp_path) -> None:
    assert GenerationConfig().repeat_run == 2.0
    (tmp_path / "old.json").write_text('{"tool": "tunesmith generate", "params": {"notes": 5}}')
    assert load_record(tmp_path / "old.json").config.repeat_run == 1.0
    for bad in (0.5, 0.0, 100.0, math.nan):
        with pytest.raises(BadParameterError, match="^repeat_run"):
            GenerationConfig(repeat_run=bad)
