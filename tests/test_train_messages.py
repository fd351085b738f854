"""What ``tunesmith train`` prints: no NaN before the first log record, nothing more under --quiet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import make_corpus
from tunesmith.cli.main import main

ARGS = [
    "--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--sample-notes", "0",
    "--threads", "1", "--no-tensorboard", "--max-steps", "4", "--eval-batches", "1",
]  # fmt: skip


def test_quiet_train_prints_no_nan_and_no_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = make_corpus(tmp_path / "corpus", n_good=10, bad=False)
    args = ["train", str(corpus), "--out", str(tmp_path / "r"), *ARGS, "--quiet"]
    assert main([*args, "--log-every", "3", "--eval-every", "2"]) == 0
    out, err = capsys.readouterr()
    text = out + err
    assert not re.search(r"\bnan\b", text), text
    assert "tokenize" not in text and "it/s" not in text and "step/s" not in text, text
    lines = text.splitlines()
    assert any(line.startswith("step 2: val loss ") for line in lines), text  # before any log
    assert any(line.startswith("step 4: train loss ") for line in lines), text
