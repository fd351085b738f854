"""Special files (FIFOs, devices, folders named x.mid) and oversized files: refused, never read.

Each CLI run is a subprocess under a memory limit and a timeout, so a regression
(reading ``/dev/zero`` until memory runs out, blocking on a FIFO) fails the test
instead of hanging it or taking the machine's memory.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_corpus, melody, write_midi
from tunesmith.errors import BadMidiError
from tunesmith.tokenization.midi_io import load_midi

SRC = Path(__file__).resolve().parents[1] / "src"
MEMORY_LIMIT = 3 * 2**30  # address space: enough for torch, far below /dev/zero's appetite


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def tunesmith(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "tunesmith.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        preexec_fn=_limit_memory,
    )


@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a symlink to /dev/zero and a folder, each named like a MIDI file."""
    folder = tmp_path / "specials"
    folder.mkdir()
    os.mkfifo(folder / "fifo.mid")
    (folder / "zero.mid").symlink_to("/dev/zero")
    (folder / "folder.mid").mkdir()
    (folder / "to_fifo.mid").symlink_to(folder / "fifo.mid")
    (folder / "to_folder.mid").symlink_to(folder / "folder.mid")
    return {p.name: p for p in folder.iterdir()}


REASONS = {
    "fifo.mid": "is a named pipe (FIFO), not a regular file",
    "zero.mid": "is a device, not a regular file",
    "folder.mid": "is a folder, not a MIDI file",
    "to_fifo.mid": "is a named pipe (FIFO), not a regular file",
    "to_folder.mid": "is a folder, not a MIDI file",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(set(REASONS) - {"zero.mid"}))  # /dev/zero: subprocess only
def test_load_midi_refuses_special_files(name: str, specials: dict[str, Path]) -> None:
    with pytest.raises(BadMidiError) as err:
        load_midi(specials[name], name=name)
    assert str(err.value) == f"{name}: {REASONS[name]}"


@pytest.mark.parametrize("name", ["fifo.mid", "zero.mid", "folder.mid"])
def test_generate_refuses_a_special_prompt(
    name: str, specials: dict[str, Path], tmp_path: Path
) -> None:
    proc = tunesmith("generate", "--prompt", specials[name], "--out", tmp_path / "out.mid")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"tunesmith generate: error: {specials[name]}: {REASONS[name]}"
    assert not (tmp_path / "out.mid").exists()


def test_prepare_lists_special_files_as_rejected(specials: dict[str, Path], tmp_path: Path) -> None:
    folder = next(iter(specials.values())).parent
    write_midi(folder / "song.mid", melody(32))
    write_midi(folder / "folder.mid" / "inner.mid", melody(24))  # a real folder is walked into
    proc = tunesmith(
        "prepare", folder, "--out", tmp_path / "cache", "--workers", "1", "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    for name, reason in REASONS.items():
        if name != "folder.mid":
            assert f"rejected {name}: {reason}" in proc.stderr.splitlines(), proc.stderr
    assert proc.stdout.startswith("6 files: 2 ok, 4 rejected"), proc.stdout


def test_size_limit_is_10_mb_and_overridable(tmp_path: Path) -> None:
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + b"\0" * (10 * 2**20))
    with pytest.raises(BadMidiError, match=r"^big.mid: 10 MB is over the 10 MB limit$"):
        load_midi(big, name="big.mid")
    song = write_midi(tmp_path / "song.mid", melody(16))
    with pytest.raises(BadMidiError, match=r"song.mid: \d+ bytes is over the 100 bytes limit"):
        load_midi(song, name="song.mid", max_bytes=100)
    assert len(load_midi(song, max_bytes=song.stat().st_size).tracks) == 1


def test_prepare_size_limit_option(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "data", n_good=3, bad=False)
    proc = tunesmith("prepare", data, "--out", tmp_path / "c", "--max-file-mb", "0.0001")
    assert proc.returncode == 2, proc.stderr
    assert "none of the 3 MIDI files is usable" in proc.stderr
    assert "bytes is over the 104 bytes limit" in proc.stderr
