"""Shared fixtures: the real corpora (skipped when absent) and synthetic MIDI helpers.

The corpora are read in place from ``../shared/datasets`` beside the repository and
never copied into it. Synthetic files are written with symusic; hostile files
that symusic refuses to write (ticks per quarter of 0, truncated chunks...) are
built byte by byte with :func:`raw_midi`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import symusic

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def step_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported decoding steps go to a folder of the test session's own, never the user's
    cache, and no test starts a background export: under ``--backend auto`` the tests
    decode with torch unless they build an export themselves."""
    folder = tmp_path_factory.mktemp("step-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNESMITH_CACHE_DIR", str(folder))
        mp.setenv("TUNESMITH_BACKGROUND_EXPORT", "0")
        yield folder


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"real MIDI corpora not found at {DATASETS} (expected ../shared/datasets)")
    return DATASETS


def _corpus(datasets_dir: Path, name: str) -> Path:
    folder = datasets_dir / name
    if not folder.is_dir():
        pytest.skip(f"corpus {name} not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def ff_dir(datasets_dir: Path) -> Path:
    """The 92-file Final Fantasy piano corpus."""
    return _corpus(datasets_dir, "final-fantasy-piano")


@pytest.fixture(scope="session")
def pop909_dir(datasets_dir: Path) -> Path:
    """The 909-file POP909 corpus."""
    return _corpus(datasets_dir, "pop909")


# --- synthetic MIDI -------------------------------------------------------------------

Note = tuple[int, int, int]  # (tick, pitch, duration in ticks)


def make_score(
    *tracks: Sequence[Note],
    tpq: int = 480,
    bpm: float = 120.0,
    velocity: int = 80,
    drum_tracks: Sequence[int] = (),
) -> symusic.Score:
    """A Score with one track per ``tracks`` argument; indices in ``drum_tracks`` are drums."""
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, float(bpm)))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    for i, notes in enumerate(tracks):
        track = symusic.Track(f"t{i}", program=0, is_drum=i in drum_tracks)
        for tick, pitch, dur in notes:
            track.notes.append(symusic.Note(tick, dur, pitch, velocity))
        score.tracks.append(track)
    return score


def write_midi(path: Path, *tracks: Sequence[Note], **kwargs: object) -> Path:
    """Write ``make_score(*tracks, **kwargs)`` to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    make_score(*tracks, **kwargs).dump_midi(path)  # type: ignore[arg-type]
    return path


def melody(n: int = 16, start_pitch: int = 60, step_ticks: int = 240) -> list[Note]:
    """``n`` eighth notes walking up and down around ``start_pitch``."""
    return [(i * step_ticks, start_pitch + (i % 7) - 3, step_ticks) for i in range(n)]


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def note_on(pitch: int, velocity: int = 90, channel: int = 0) -> bytes:
    return bytes([0x90 | channel, pitch, velocity])


def note_off(pitch: int, channel: int = 0) -> bytes:
    return bytes([0x80 | channel, pitch, 0])


def raw_track(events: Sequence[tuple[int, bytes]]) -> bytes:
    """An ``MTrk`` chunk from ``(delta_ticks, message)`` pairs, end-of-track appended."""
    body = b"".join(_vlq(delta) + msg for delta, msg in events) + b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + body


def raw_midi(
    tracks: Sequence[bytes], tpq: int = 480, fmt: int = 1, n_tracks: int | None = None
) -> bytes:
    """A MIDI file built byte by byte (any header values, even invalid ones)."""
    n = len(tracks) if n_tracks is None else n_tracks
    return b"MThd" + struct.pack(">IHHH", 6, fmt, n, tpq) + b"".join(tracks)


# Hostile files of make_corpus() -> the reason prepare() gives (its start).
BAD_REASONS = {
    "bad/empty.mid": "empty file (0 bytes)",
    "bad/cut.mid": "corrupt MIDI",
    "bad/text.mid": "not a MIDI file (no MThd header)",
    "bad/silent.mid": "no notes",
    "bad/drums.mid": "drums only",
    "bad/high.mid": "no notes in the piano range 21-108",
    "bad/tpq0.mid": "invalid MIDI header (ticks per quarter = 0)",
}


def make_corpus(root: Path, n_good: int = 6, bad: bool = True) -> Path:
    """A folder of ``n_good`` small songs (one in a .MIDI file), a .txt, and the BAD_REASONS files."""
    for i in range(n_good):
        ext = ".MIDI" if i == 1 else ".mid"
        write_midi(root / f"good/g{i}{ext}", melody(24 + 8 * i, 50 + i), melody(8, 40), bpm=100 + i)
    (root / "notes.txt").write_text("not MIDI, ignored")
    if bad:
        (root / "bad").mkdir(parents=True)
        (root / "bad/empty.mid").write_bytes(b"")
        (root / "bad/cut.mid").write_bytes(
            raw_midi([raw_track([(0, note_on(60)), (480, note_off(60))])])[:-6]
        )
        (root / "bad/text.mid").write_text("hello")
        (root / "bad/silent.mid").write_bytes(raw_midi([raw_track([])]))
        write_midi(root / "bad/drums.mid", [(0, 36, 240), (240, 38, 240)], drum_tracks=[0])
        write_midi(root / "bad/high.mid", [(0, 120, 240)])
        (root / "bad/tpq0.mid").write_bytes(
            raw_midi([raw_track([(0, note_on(60)), (480, note_off(60))])], tpq=0)
        )
    return root


def decisive_tiny_model():  # -> Transformer (imported lazily: conftest loads for every test)
    """A tiny-original model with decisive random weights that never end a piece early."""
    import torch

    from tunesmith.model.config import preset
    from tunesmith.model.transformer import Transformer
    from tunesmith.tokenization.pairs import PairTokenizer

    tok = PairTokenizer()
    torch.manual_seed(1234)
    model = Transformer(preset("tiny-original", tok.vocab_size), pad_id=tok.pad_id).eval()
    with torch.no_grad():
        model.embed.weight.mul_(8)
        model.head.bias[tok.eos_id] = -1e4
    return model


# --- the command line -----------------------------------------------------------------


def cli_exit_code(argv: list[str]) -> int:
    """``tunesmith argv``'s exit code: ``main``'s return value, or argparse's for a usage error."""
    from tunesmith.cli.main import main  # lazily, like the model above

    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def assert_one_line_error(
    capsys: pytest.CaptureFixture[str], code: int, needle: str, *unwritten: Path, prefix: str = ""
) -> None:
    """A refusal as the user sees it: exit code 2, one stderr line (starting with ``prefix``)
    that holds ``needle`` and no traceback, and none of the ``unwritten`` output files on disk."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err
    assert err.startswith(prefix), err
    for path in unwritten:
        assert not path.exists(), f"{path} was written"


# The repetition remedies that greedy and beam use by default, asked for off: the searches alone.
REMEDIES_OFF = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
