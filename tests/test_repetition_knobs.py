"""``no_repeat_ngram_size`` and ``repetition_penalty``: Hugging Face's remedies, on notes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import decisive_tiny_model, make_score, melody
from tunesmith.generation import processors as P
from tunesmith.generation.generator import Generator
from tunesmith.generation.no_repeat import repeated_pitches
from tunesmith.generation.repetition_penalty import WINDOW_NOTES, RepetitionPenalty
from tunesmith.tokenization.pairs import DUR_OFFSET, PITCH_OFFSET, PairTokenizer

NOTES = 40


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(decisive_tiny_model(), PairTokenizer())


@pytest.fixture(scope="module")
def prompt():
    return make_score(melody(12, 62), melody(4, 43, 960))


def repeats_ending_in_new_notes(grid: np.ndarray, n_prompt: int, n: int) -> int:
    """How many n-grams of (pitch, duration) that end at a new note occurred earlier."""
    notes = [tuple(r) for r in grid[:, 1:].tolist()]
    seen: set[tuple] = set()
    count = 0
    for end in range(n, len(notes) + 1):
        gram = tuple(notes[end - n : end])
        count += end > n_prompt and gram in seen
        seen.add(gram)
    return count


def test_repeated_pitches_are_those_that_followed_the_same_notes() -> None:
    pitches, durs = [60, 62, 64, 60, 62, 67, 60, 62], [2, 2, 2, 2, 2, 2, 2, 2]
    assert repeated_pitches(pitches, durs, 3) == [64, 67]
    assert repeated_pitches(pitches, [2, 2, 2, 2, 1, 2, 2, 2], 3) == [64]
    assert repeated_pitches(pitches, durs, 1) == [60, 62, 64, 67]
    assert repeated_pitches(pitches[:2], durs[:2], 3) == [] and repeated_pitches([], [], 2) == []


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_no_banned_ngram_ever_appears(gen: Generator, prompt, search: str) -> None:
    params = {"notes": NOTES, "search": search, "beam_width": 3, "max_copy": 0}
    free = gen.generate(prompt, **params)
    assert repeats_ending_in_new_notes(free.grid, free.n_prompt_notes, 3) > 0  # it loops
    for n in (3, 2):
        res = gen.generate(prompt, no_repeat_ngram_size=n, **params)
        assert res.n_new_notes == NOTES
        assert repeats_ending_in_new_notes(res.grid, res.n_prompt_notes, n) == 0, (search, n)


def test_the_penalty_is_hugging_faces() -> None:
    logits = np.array([[2.0, -2.0, 1.0, float("-inf")]], dtype=np.float32)
    seen = np.array([[True, True, False, True]])
    out = P.repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0, float("-inf")]]


def test_the_penalty_lowers_the_pitches_of_recent_notes() -> None:
    tok = PairTokenizer()
    ids = tok.encode_grid(np.array([[0, 60, 4], [4, 64, 4], [8, 67, 2]])).tolist()
    rule = RepetitionPenalty(1.5, ids)
    logits = np.random.default_rng(0).standard_normal((1, tok.vocab_size)).astype(np.float32)
    probs = P.softmax(logits)[0]
    after = P.softmax(rule.adjust_logits(logits))[0]
    recent = [PITCH_OFFSET + p for p in (60, 64, 67)]
    assert (after[recent] < probs[recent]).all()
    others = [i for i in range(PITCH_OFFSET, DUR_OFFSET) if i not in recent]
    assert (after[others] >= probs[others]).all()
    rule.reorder(np.array([0, 0]))  # beams: each row keeps its own notes
    assert rule.seen(tok.vocab_size).sum(1).tolist() == [3, 3]
    assert WINDOW_NOTES >= 16


def test_the_penalty_changes_greedy_toward_fresh_pitches(gen: Generator, prompt) -> None:
    params = {"notes": NOTES, "search": "greedy", "max_copy": 0}
    free = gen.generate(prompt, **params)
    res = gen.generate(prompt, repetition_penalty=3.0, **params)
    assert res.n_new_notes == NOTES and res.ids != free.ids
    distinct = [len(set(r.grid[r.n_prompt_notes :, 1].tolist())) for r in (free, res)]
    assert distinct[1] >= distinct[0], distinct
    beam = gen.generate(prompt, repetition_penalty=3.0, search="beam", beam_width=3, notes=12)
    assert beam.n_new_notes == 12
