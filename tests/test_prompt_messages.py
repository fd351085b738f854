"""A prompt without usable notes: the error names the file, in the Python API and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import raw_midi, raw_track, write_midi
from tunesmith.cli.main import main
from tunesmith.errors import BadMidiError
from tunesmith.generation import Generator
from tunesmith.model import Transformer, preset, save_checkpoint
from tunesmith.tokenization import PairTokenizer
from tunesmith.tokenization.midi_io import load_midi

NO_NOTES = "has no notes in the piano range (21-108)"


def _drums(path: Path) -> None:
    write_midi(path, [(0, 36, 240), (240, 38, 240)], drum_tracks=[0])


def _too_high(path: Path) -> None:
    write_midi(path, [(0, 120, 240), (240, 110, 240)])


def _header_only(path: Path) -> None:
    path.write_bytes(raw_midi([raw_track([])]))


PROMPTS = {
    "drums.mid": _drums,
    "high.mid": _too_high,
    "header.mid": _header_only,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "ck"
    save_checkpoint(path, Transformer(preset("tiny", PairTokenizer().vocab_size)), PairTokenizer())
    return path


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_python_api_names_the_prompt(name: str, model_dir: Path, tmp_path: Path) -> None:
    PROMPTS[name](tmp_path / name)
    gen = Generator.from_pretrained(model_dir)
    score = load_midi(tmp_path / name)
    with pytest.raises(BadMidiError) as err:
        gen.generate(score, prompt_name=name, notes=4)
    assert str(err.value) == f"{name}: the prompt {NO_NOTES}"
    with pytest.raises(BadMidiError, match=re.escape(f"the prompt {NO_NOTES}")):
        gen.generate(score, notes=4)  # a Score alone has no file name


def test_cli_names_the_prompt(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = tmp_path / "intro.mid"
    _drums(prompt)
    code = main(
        [
            "generate",
            "--model",
            str(model_dir),
            "--prompt",
            str(prompt),
            "--out",
            str(tmp_path / "o.mid"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"tunesmith generate: error: {prompt}: the prompt {NO_NOTES}"
