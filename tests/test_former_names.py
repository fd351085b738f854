"""Files and flags from before the ``seed`` -> ``pairs`` / ``original`` rename keep working."""

from __future__ import annotations

import shutil
from pathlib import Path

from tunesmith.model.checkpoint import load_checkpoint
from tunesmith.model.config import ModelConfig, preset
from tunesmith.tokenization import build_tokenizer, canonical_name, tokenizer_from_dict
from tunesmith.tokenization.pairs import PairTokenizer
from tunesmith.training.config import TrainConfig

BUNDLED = Path(__file__).parents[1] / "src/tunesmith/pretrained/ff-piano"


def test_the_tokenizer_former_name_builds_and_loads_the_pairs_tokenizer() -> None:
    assert canonical_name("seed") == "pairs" and canonical_name("tsd") == "tsd"
    assert isinstance(build_tokenizer("seed"), PairTokenizer)
    old = tokenizer_from_dict({"type": "seed", "version": 2, "infill": True, "vocab_size": 304})
    assert old.name == "pairs" and old.to_dict()["type"] == "pairs"
    assert TrainConfig(tokenizer="seed").tokenizer == "pairs"


def test_the_style_former_name_is_the_original_style() -> None:
    cfg = ModelConfig.from_dict({**preset("seed", 296).to_dict(), "style": "seed"})
    assert cfg.style == "original" and cfg == preset("seed", 296)


def test_a_checkpoint_written_before_the_rename_loads(tmp_path: Path) -> None:
    # The bundled model as it was saved before the rename: "type": "seed" in its files.
    folder = tmp_path / "old"
    shutil.copytree(BUNDLED, folder)
    for name in ("tokenizer.json", "config.json"):
        text = (folder / name).read_text()
        (folder / name).write_text(text.replace('"type": "pairs"', '"type": "seed"'))
    assert '"seed"' in (folder / "tokenizer.json").read_text()
    checkpoint = load_checkpoint(folder)
    assert checkpoint.tokenizer.name == "pairs" and checkpoint.model.cfg.style == "modern"
