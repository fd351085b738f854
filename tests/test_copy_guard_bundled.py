"""``max_copy`` on the bundled model, prompted with openings of its own training files.

Greedy search copies most; the check uses the same index the sidecar reports with.
"""

from __future__ import annotations

import pytest

from tunesmith.evaluation.memorisation import INDEX_FILE, MemorisationIndex
from tunesmith.generation import Generator
from tunesmith.tokenization.midi_io import load_midi

PROMPT_NOTES = 64


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator.from_pretrained()


@pytest.fixture(scope="module")
def index(generator: Generator) -> MemorisationIndex:
    return MemorisationIndex.load(generator.checkpoint / INDEX_FILE)


@pytest.fixture(scope="module")
def training_openings(datasets_dir, index: MemorisationIndex):
    root = datasets_dir / "final-fantasy-piano"
    return [load_midi(root / name) for name in index.names[:3:2]]  # two training files


def runs(index: MemorisationIndex, res, n: int) -> tuple[int, int]:
    """Longest copied run among the new notes, and among runs reaching into them."""
    new_only = index.longest_copy(res.grid, from_note=res.n_prompt_notes).length_notes
    reaching = index.longest_copy(res.grid, from_note=res.n_prompt_notes - n).length_notes
    return new_only, reaching


def test_max_copy_8_holds_with_greedy_on_training_openings(generator, index, training_openings):
    for score in training_openings:
        res = generator.generate(score, prompt_notes=PROMPT_NOTES, notes=40, search="greedy",
                                 max_copy=8)  # fmt: skip
        assert res.n_new_notes == 40 and not res.warnings
        assert max(runs(index, res, 8)) <= 8
        # The prompt is a training file's opening: without the prompt cut, it is the copy.
        assert index.longest_copy(res.grid).length_notes > 8


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_a_tight_guard_bites_and_holds(generator, index, training_openings, search):
    params = {"prompt_notes": PROMPT_NOTES, "notes": 24, "search": search, "beam_width": 2}
    free = generator.generate(training_openings[0], max_copy=0, **params)
    guarded = generator.generate(training_openings[0], max_copy=2, **params)
    assert max(runs(index, free, 2)) > 2  # short runs are everywhere in 72k training notes
    assert max(runs(index, guarded, 2)) <= 2 and guarded.n_new_notes == 24
