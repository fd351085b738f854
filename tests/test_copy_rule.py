"""``max_copy`` while decoding: no run copied from the training notes grows past N, in any search.

A tiny model with fixed random weights (as in ``test_pinned_output``) loops greedily,
so its own unguarded piece, indexed as the "training file", is a copy of every note
it plays again: the guard must then keep every copied run within N notes, the prompt's
notes counting as the notes before the first new one.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import decisive_tiny_model, make_score, melody
from tunesmith.errors import BadParameterError
from tunesmith.evaluation.memorisation import MemorisationIndex
from tunesmith.generation.generator import Generator
from tunesmith.generation.record import load_record
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization.pairs import PairTokenizer

NOTES = 40


@pytest.fixture(scope="module")
def model() -> Transformer:
    return decisive_tiny_model()


@pytest.fixture(scope="module")
def prompt():
    return make_score(melody(12, 62), melody(4, 43, 960))


def with_index(model: Transformer, index: MemorisationIndex | None) -> Generator:
    gen = Generator(model, PairTokenizer())
    gen.training_notes = index  # what a checkpoint's memorisation.npz would give
    return gen


def longest_through_new_notes(index: MemorisationIndex, grid: np.ndarray, n_prompt: int, n: int):
    """The longest copied run among new notes, and among runs that reach into them."""
    new_only = index.longest_copy(grid, from_note=n_prompt).length_notes
    reaching = index.longest_copy(grid, from_note=max(n_prompt - n, 0)).length_notes
    return new_only, reaching


@pytest.mark.parametrize("search", ["greedy", "beam", "top_k"])
def test_no_copied_run_exceeds_max_copy(model, prompt, search: str) -> None:
    params = {"notes": NOTES, "search": search, "seed": 3, "beam_width": 3}
    free = with_index(model, None).generate(prompt, max_copy=0, **params)
    index = MemorisationIndex.build([free.grid], ["own.mid"])  # the piece itself as training data
    assert index.longest_copy(free.grid, from_note=free.n_prompt_notes).length_notes == NOTES
    for n in (8, 3):
        res = with_index(model, index).generate(prompt, max_copy=n, **params)
        assert res.n_new_notes == NOTES and res.stop_reason == "length"
        assert res.grid[: res.n_prompt_notes].tolist() == free.grid[: free.n_prompt_notes].tolist()
        new_only, reaching = longest_through_new_notes(index, res.grid, res.n_prompt_notes, n)
        assert new_only <= n and reaching <= n, (search, n, new_only, reaching)


def test_a_guard_that_never_bites_changes_nothing(model, prompt) -> None:
    index = MemorisationIndex.build([np.array([[0, 30, 1], [1, 31, 1], [2, 32, 1]])], ["x.mid"])
    plain = with_index(model, None).generate(prompt, notes=NOTES, search="greedy", max_copy=0)
    for gen, n in ((with_index(model, index), 2), (with_index(model, index), 0)):
        res = gen.generate(prompt, notes=NOTES, search="greedy", max_copy=n)
        assert res.ids == plain.ids and not res.warnings


def test_without_an_index_the_default_is_off_and_a_given_value_is_refused(model, prompt) -> None:
    gen = with_index(model, None)
    plain = gen.generate(prompt, notes=12, search="greedy", max_copy=0)
    res = gen.generate(prompt, notes=12, search="greedy")  # the default, 16
    assert res.ids == plain.ids
    assert not res.warnings
    with pytest.raises(BadParameterError, match="^max_copy: .*memorisation index"):
        gen.generate(prompt, notes=12, max_copy=16)
    with pytest.raises(BadParameterError, match="^max_copy: must be"):
        gen.generate(prompt, notes=12, max_copy=-1)


def test_a_record_older_than_the_knobs_replays_with_them_off(tmp_path) -> None:
    (tmp_path / "old.json").write_text('{"tool": "tunesmith generate", "params": {"notes": 5}}')
    config = load_record(tmp_path / "old.json").config
    assert (config.max_copy, config.repetition_penalty, config.no_repeat_ngram_size) == (0, 1.0, 0)
    assert config.eos_after == 0.0  # then, the model could end a piece after its first note
