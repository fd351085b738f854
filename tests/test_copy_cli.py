"""``--max-copy``, ``--repetition-penalty``, ``--no-repeat-ngram-size`` on the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, cli_exit_code
from tunesmith.evaluation.memorisation import INDEX_FILE, MemorisationIndex
from tunesmith.model import Transformer, preset, save_checkpoint
from tunesmith.tokenization import PairTokenizer
from tunesmith.tokenization.midi_io import score_from_grid


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A tiny checkpoint without an index, the same with one, and a prompt."""
    root = tmp_path_factory.mktemp("copy-cli")
    tok = PairTokenizer()
    torch.manual_seed(0)
    save_checkpoint(root / "ck", Transformer(preset("tiny", tok.vocab_size)), tok)
    shutil.copytree(root / "ck", root / "indexed")
    rows = np.array([[4 * i, 60 + (i % 5), 4] for i in range(12)])
    MemorisationIndex.build([rows], ["train.mid"]).save(root / "indexed" / INDEX_FILE)
    score_from_grid(rows).dump_midi(str(root / "prompt.mid"))
    return root


def _run(root: Path, model: str, *args: str) -> int:
    argv = ["generate", "--model", str(root / model), "--prompt", str(root / "prompt.mid")]
    return cli_exit_code([*argv, "--notes", "8", "--out", str(root / "o.mid"), *args])


REFUSED = {
    "no index": (["--max-copy", "8"], "--max-copy: "),
    "negative run": (["--max-copy", "-1"], "--max-copy"),
    "not a number": (["--max-copy", "eight"], "--max-copy"),
    "penalty below 1": (["--repetition-penalty", "0.5"], "--repetition-penalty"),
    "penalty not finite": (["--repetition-penalty", "nan"], "--repetition-penalty"),
    "negative n-gram": (["--no-repeat-ngram-size", "-2"], "--no-repeat-ngram-size"),
    "repeat bias below 1": (["--repeat-bias", "0.5"], "--repeat-bias"),
    "repeat bias above 100": (["--repeat-bias", "1000"], "--repeat-bias"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_in_one_line_with_exit_2_and_nothing_written(root, capsys, case) -> None:
    args, word = REFUSED[case]
    assert_one_line_error(capsys, _run(root, "ck", *args), word, root / "o.mid", root / "o.json")


def test_the_default_is_silently_off_on_a_model_without_an_index(root, capsys) -> None:
    assert _run(root, "ck") == 0
    err = capsys.readouterr().err
    assert "max_copy" not in err and "warning" not in err
    record = json.loads((root / "o.json").read_text())
    assert record["params"]["max_copy"] == 16 and "memorisation" not in record
    (root / "o.mid").unlink(), (root / "o.json").unlink()


def test_the_sidecar_reports_a_run_within_max_copy(root, capsys) -> None:
    args = ["--max-copy", "2", "--search", "greedy", "--no-repeat-ngram-size", "4"]
    assert _run(root, "indexed", *args, "--repetition-penalty", "1.2") == 0
    record = json.loads((root / "o.json").read_text())
    assert record["params"]["max_copy"] == 2 and record["params"]["no_repeat_ngram_size"] == 4
    assert record["memorisation"]["length_notes"] <= 2
    assert "longest copied run" in capsys.readouterr().out
    (root / "o.mid").unlink(), (root / "o.json").unlink()
