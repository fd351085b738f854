"""The bundled model's quality bar, on held-out files: it makes music and does not copy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tunesmith.data.split import assign_splits
from tunesmith.evaluation.memorisation import copy_of_training_data
from tunesmith.generation import SEARCHES, Generator
from tunesmith.model import bundled_model_path
from tunesmith.model.checkpoint import read_config
from tunesmith.tokenization.midi_io import load_midi


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator.from_pretrained()


@pytest.fixture(scope="module")
def openings(datasets_dir):
    """The held-out (val and test) files of the corpus the model was trained on."""
    root = datasets_dir / "final-fantasy-piano"
    names = sorted(p.name for p in root.glob("*.mid"))
    splits = assign_splits(names)
    return [root / n for n in names if splits[n] != "train"]


def test_bundled_model_is_a_small_checkpoint():
    path = bundled_model_path()
    assert sum(f.stat().st_size for f in path.iterdir()) < 15e6
    config = read_config(path)
    assert config["model"]["style"] == "modern" and config["tokenizer"]["type"] == "pairs"


@pytest.mark.parametrize("search", SEARCHES)
def test_quality_bar_from_nothing_and_from_held_out_openings(generator, openings, search):
    for path in [None, *openings]:
        prompt = load_midi(path) if path else None
        res = generator.generate(
            prompt, prompt_notes=32 if path else None, notes=64, search=search, seed=0
        )
        where = f"{search} from {path.name if path else 'nothing'}"
        new = res.grid[res.n_prompt_notes :]
        assert len(new) > 0 and len(load_midi(res.score.dumps_midi()).tracks[0].notes) == len(
            res.grid
        )
        bars = np.unique(new[:, 0] // 16)
        assert np.diff(bars).max(initial=1) == 1, f"{where}: a bar without a note"
        longest_same = max(len(list(g)) for _, g in itertools.groupby(new[:, 1].tolist()))
        assert longest_same <= 8, f"{where}: one note stuck repeating"
        copy = copy_of_training_data(generator.checkpoint, res.grid, res.n_prompt_notes)
        assert copy is not None and copy.length_notes <= 16, f"{where}: {copy.describe()}"
