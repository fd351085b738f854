"""``tunesmith prepare``: summary and rejected files on success, one-line errors and exit 2 otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_corpus
from tunesmith.cli.main import main


def test_cli_prepare_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_corpus(tmp_path / "data")
    assert (
        main(
            ["prepare", str(data), "--out", str(tmp_path / "c"), "--workers", "1", "--no-progress"]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("13 files: 6 ok, 7 rejected: ")
    assert "rejected bad/empty.mid: empty file (0 bytes)" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "{tmp}/missing", "--out", "{tmp}/c"], "missing: no such folder"),
        (["prepare", "{tmp}", "--out", "{tmp}/c", "--bpe-vocab", "500"], "--bpe-vocab"),
        (["prepare", "{tmp}", "--out", "{tmp}/c", "--workers", "0"], "--workers"),
        (["prepare", "{tmp}", "--out", "{tmp}/c"], "no .mid or .midi files"),
        (["prepare", "{tmp}", "--out", "{tmp}/c", "--tokenizer", "xyz"], "invalid choice"),
    ],
)
def test_cli_prepare_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_cli_subprocess_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.mid").write_text("not midi")
    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith", "prepare", str(bad), "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert (
        len(lines) == 1 and "x.mid: not a MIDI file" in lines[0] and "Traceback" not in proc.stderr
    )
    assert not (tmp_path / "c").exists()


def test_cli_prepare_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["prepare", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "Tokenize every .mid/.midi file under DATA_DIR" in out
    assert all(flag in out for flag in ("--out", "--tokenizer", "--workers", "--bpe-vocab"))
