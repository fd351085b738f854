"""``repeat_bias``: a bar that has started like an earlier one is pushed to finish like it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import make_score
from tunesmith.errors import BadParameterError
from tunesmith.evaluation.texture import repeated_bar_rate
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.generator import Generator
from tunesmith.generation.note_rules import check_pairs_encoding
from tunesmith.generation.record import load_record
from tunesmith.generation.repeat_bias import RepeatBias
from tunesmith.model import Transformer, preset
from tunesmith.tokenization.pairs import DUR_OFFSET, PITCH_OFFSET, SEP, PairTokenizer

TOK = PairTokenizer()
MOTIF = [(0, 64, 4), (0, 60, 4), (4, 67, 2), (6, 65, 2), (8, 62, 8)]  # (step, pitch, dur)
BASS = [(16, 43, 16)]  # bar 2: one long bass note


def ids_of(notes: list[tuple[int, int, int]]) -> list[int]:
    return TOK.encode_grid(np.array(notes, dtype=np.int64)).tolist()


def shifted(notes: list[tuple[int, int, int]], bars: int) -> list[tuple[int, int, int]]:
    return [(s + 16 * bars, p, d) for s, p, d in notes]


def boosted(rule: RepeatBias, row: int = 0) -> list[int]:
    logits = np.zeros((len(rule.rows), TOK.vocab_size), dtype=np.float32)
    out = rule.adjust_logits(logits)[row]
    assert np.all((out == 0) | np.isclose(out, math.log(rule_bias(rule))))
    return np.flatnonzero(out).tolist()


def rule_bias(rule: RepeatBias) -> float:
    return math.exp(rule.log_bias)


def take(rule: RepeatBias, *tokens: int) -> None:
    for t in tokens:
        rule.update(None, np.full(len(rule.rows), t))  # type: ignore[arg-type]


def test_a_bar_that_starts_like_the_bar_two_back_gets_its_continuation_boosted() -> None:
    rule = RepeatBias(10.0, ids_of(MOTIF + BASS + shifted(MOTIF[:1], 2)))  # bar 2 (from 0): 64 at 0
    assert boosted(rule) == [PITCH_OFFSET + 60]  # the chord's lower note
    take(rule, PITCH_OFFSET + 60)
    assert boosted(rule) == [DUR_OFFSET + 4]
    take(rule, DUR_OFFSET + 4)
    assert boosted(rule) == [SEP]  # the next note is at step 4: a rest continues the bar
    take(rule, SEP)
    assert boosted(rule) == [DUR_OFFSET + 4]
    take(rule, DUR_OFFSET + 4, PITCH_OFFSET + 67, DUR_OFFSET + 2, SEP, DUR_OFFSET + 2)
    take(rule, PITCH_OFFSET + 65, DUR_OFFSET + 2, SEP, DUR_OFFSET + 2, PITCH_OFFSET + 62)
    assert boosted(rule) == [DUR_OFFSET + 8]
    take(rule, DUR_OFFSET + 8)
    assert boosted(rule) == [SEP]  # the bar is complete: leave it as the earlier bar did
    take(rule, SEP)
    assert boosted(rule) == [DUR_OFFSET + 8]  # to the next bar's first note, as bar 1 did


def test_no_boost_before_the_first_note_of_a_bar_nor_after_a_departure() -> None:
    rule = RepeatBias(10.0, ids_of(MOTIF + BASS) + [SEP, DUR_OFFSET + 16])  # at bar 2's start
    assert boosted(rule) == []  # the model chooses whether to start a repeat
    take(rule, PITCH_OFFSET + 64, DUR_OFFSET + 3)  # the motif's first pitch, another duration
    assert boosted(rule) == []
    rule = RepeatBias(10.0, ids_of(MOTIF + shifted(MOTIF[:1], 1)))
    take(rule, SEP, DUR_OFFSET + 5)  # past the next note's step (the chord's 60, at 0)
    assert boosted(rule) == []


def test_several_matching_bars_boost_each_continuation() -> None:
    other = [(0, 64, 4), (2, 72, 2)]
    rule = RepeatBias(3.0, ids_of(MOTIF + shifted(other, 1) + shifted(MOTIF[:1], 2)))
    assert boosted(rule) == [SEP, PITCH_OFFSET + 60]  # bar 1 rests to step 2, bar 2 back plays 60


def test_beam_reorder_keeps_each_rows_state() -> None:
    rule = RepeatBias(10.0, ids_of(MOTIF + shifted(MOTIF[:1], 1)))
    rule.reorder(np.zeros(2, dtype=np.int64))
    rule.update(None, np.array([PITCH_OFFSET + 60, PITCH_OFFSET + 59]))  # type: ignore[arg-type]
    assert boosted(rule, 0) == [DUR_OFFSET + 4] and boosted(rule, 1) == []
    rule.reorder(np.array([1, 0, 0]))
    assert boosted(rule, 0) == [] and boosted(rule, 1) == boosted(rule, 2) == [DUR_OFFSET + 4]
    take(rule, DUR_OFFSET + 4)
    assert boosted(rule, 0) == [] and boosted(rule, 2) == [SEP]


@pytest.fixture(scope="module")
def gen() -> Generator:
    """An untrained tiny model: near-flat logits that a bias of 100 always outweighs."""
    torch.manual_seed(0)
    return Generator(Transformer(preset("tiny", TOK.vocab_size)).eval(), TOK)


def test_a_huge_bias_turns_a_started_repeat_into_an_exact_repeated_bar(gen: Generator) -> None:
    started = make_score([(s * 120, p, d * 120) for s, p, d in MOTIF + shifted(MOTIF[:1], 1)])
    params = {"search": "top_k", "top_k_notes": 1, "top_k_durations": 1, "notes": 12}
    free = gen.generate(started, max_copy=0, **params)
    res = gen.generate(started, max_copy=0, repeat_bias=100.0, **params)
    bar = [tuple(n) for n in res.grid.tolist() if 16 <= n[0] < 32]
    assert sorted(bar) == sorted(shifted(MOTIF, 1))
    assert repeated_bar_rate(res.grid[:10]) == 0.5
    assert repeated_bar_rate(free.grid[:10]) == 0.0  # without the bias, no repeat
    beam = gen.generate(started, max_copy=0, repeat_bias=100.0, search="beam", beam_width=3,
                        notes=12, stop_at_eos=False)  # fmt: skip
    assert beam.n_new_notes == 12


def test_an_old_sidecar_replays_with_the_bias_off(tmp_path) -> None:
    (tmp_path / "old.json").write_text('{"tool": "tunesmith generate", "params": {"notes": 5}}')
    assert load_record(tmp_path / "old.json").config.repeat_bias == 1.0


def test_bad_values_and_other_tokenizers_are_refused() -> None:
    for bad in (0.5, 101.0, math.nan):
        with pytest.raises(BadParameterError, match="repeat_bias"):
            GenerationConfig(repeat_bias=bad)
    with pytest.raises(BadParameterError, match="^repeat_bias: needs a model with the pairs"):
        check_pairs_encoding(GenerationConfig(repeat_bias=3.0), pairs_encoding=False)
