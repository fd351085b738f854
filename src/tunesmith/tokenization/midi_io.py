"""MIDI in and out on symusic, guarded against hostile files.

Everything that parses a MIDI file goes through :func:`load_midi`, and everything
that writes one through :func:`save_midi`. The grid view of a score that the
tokenizers, the evaluation and the memorisation check share is
:func:`grid_notes`.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import symusic

from tunesmith.errors import BadMidiError, TunesmithError

STEPS_PER_QUARTER = 4  # the 16th-note grid of the original project
STEPS_PER_BAR = 4 * STEPS_PER_QUARTER  # a bar of 4/4, the only metre tunesmith writes
PIANO_LOW, PIANO_HIGH = 21, 108  # inclusive MIDI pitches of an 88-key piano
OUTPUT_TPQ = 480  # ticks per quarter of the MIDI files tunesmith writes
DEFAULT_BPM = 120.0

# Limits that keep a hostile file from exhausting memory or time. Real music is
# orders of magnitude below each of them. MAX_FILE_BYTES is the default of every
# reader (CLI, Python API, prepare, the web UI's uploads); each takes an override.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_TRACKS = 1024
MAX_NOTES = 2_000_000
MAX_STEPS = 4 * 60 * 60 * 8  # four hours of 16th notes at 120 bpm (a 32-bit-safe span)


def _check_score(score: symusic.Score, name: str) -> symusic.Score:
    if score.tpq <= 0:
        raise BadMidiError(f"{name}: invalid MIDI header (ticks per quarter = {score.tpq})")
    if len(score.tracks) > MAX_TRACKS:
        raise BadMidiError(f"{name}: too many tracks ({len(score.tracks)} > {MAX_TRACKS})")
    n_notes = sum(len(t.notes) for t in score.tracks)
    if n_notes > MAX_NOTES:
        raise BadMidiError(f"{name}: too many notes ({n_notes} > {MAX_NOTES})")
    if score.end() / score.tpq * STEPS_PER_QUARTER > MAX_STEPS:
        raise BadMidiError(
            f"{name}: too long (over {MAX_STEPS // 4 // 120 // 60} hours at 120 bpm)"
        )
    return score


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, for a refusal."""
    if stat.S_ISDIR(mode):
        return "is a folder, not a MIDI file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.3g} MB" if n_bytes >= 2**17 else f"{n_bytes} bytes"


def _too_large(name: str, size: int, max_bytes: int) -> BadMidiError:
    # The size read may stop one byte past the limit: say "over" rather than a wrong size.
    what = _size(size) if size != max_bytes + 1 else "the file"
    return BadMidiError(f"{name}: {what} is over the {_size(max_bytes)} limit")


def read_file_bytes(path: str | os.PathLike[str], name: str, max_bytes: int) -> bytes:
    """The bytes of ``path`` (symlinks followed) if it is a regular file of at most ``max_bytes``.

    A FIFO, device, socket or folder is refused before it is opened (opening a
    FIFO blocks; ``/dev/zero`` never ends), and again on the opened descriptor,
    so a file swapped in between cannot slip through. At most ``max_bytes + 1``
    bytes are ever read.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise BadMidiError(f"{name}: {_kind(mode)}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BadMidiError(f"{name}: no such file") from None
    except OSError as err:
        raise BadMidiError(f"{name}: cannot read ({err.strerror or err})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BadMidiError(f"{name}: {_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise _too_large(name, info.st_size, max_bytes)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew since fstat
        raise _too_large(name, len(data), max_bytes)
    return data


def load_midi(
    source: str | os.PathLike[str] | bytes,
    name: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> symusic.Score:
    """Parse a MIDI file (a path or its bytes) into a tick-based symusic Score.

    Raises :class:`BadMidiError` with a one-line reason naming the file for a
    missing, empty, oversized (over ``max_bytes``), corrupt or hostile file, or a
    path that is not a regular file (a folder, a FIFO, a device).
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        name = name or "<bytes>"
    else:
        name = name or str(source)
        data = read_file_bytes(source, name, max_bytes)
    if len(data) == 0:
        raise BadMidiError(f"{name}: empty file (0 bytes)")
    if len(data) > max_bytes:
        raise _too_large(name, len(data), max_bytes)
    if data[:4] != b"MThd":
        raise BadMidiError(f"{name}: not a MIDI file (no MThd header)")
    try:
        score = symusic.Score.from_midi(data)
    except Exception as err:  # symusic reports every parse failure as a plain C++ exception
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadMidiError(f"{name}: corrupt MIDI ({reason})") from None
    return _check_score(score, name)


def grid_notes(score: symusic.Score) -> np.ndarray:
    """The score's notes on the 16th-note grid, as an ``(N, 3)`` int32 array.

    Columns are ``(step, pitch, duration_steps)``. Drum tracks and notes outside
    the piano range are dropped, all other tracks merged; a duration is at least
    one step; two notes of one pitch on one step become one (the longer). Rows are
    ordered by step, then from the highest pitch to the lowest, as the tokens are.
    """
    grid = score.resample(STEPS_PER_QUARTER, min_dur=1)
    parts = []
    for track in grid.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        arr = track.notes.numpy()
        parts.append(
            np.stack(
                [
                    arr["time"].astype(np.int64),
                    arr["pitch"].astype(np.int64),
                    arr["duration"].astype(np.int64),
                ],
                axis=1,
            )
        )
    if not parts:
        return np.zeros((0, 3), dtype=np.int32)
    notes = np.concatenate(parts)
    keep = (notes[:, 1] >= PIANO_LOW) & (notes[:, 1] <= PIANO_HIGH) & (notes[:, 0] >= 0)
    notes = notes[keep]
    notes[:, 2] = np.maximum(notes[:, 2], 1)
    # Sort by step ascending, pitch descending, duration descending; then keep the
    # first (longest) of each (step, pitch) pair.
    order = np.lexsort((-notes[:, 2], -notes[:, 1], notes[:, 0]))
    notes = notes[order]
    if len(notes) > 1:
        dup = (notes[1:, 0] == notes[:-1, 0]) & (notes[1:, 1] == notes[:-1, 1])
        notes = notes[np.concatenate([[True], ~dup])]
    return notes.astype(np.int32)


def score_from_grid(
    notes: np.ndarray, bpm: float = DEFAULT_BPM, velocity: int = 90, program: int = 0
) -> symusic.Score:
    """Build a one-track piano Score at :data:`OUTPUT_TPQ` from ``(step, pitch, dur)`` rows."""
    ticks = OUTPUT_TPQ // STEPS_PER_QUARTER
    score = symusic.Score(OUTPUT_TPQ)
    score.tempos.append(symusic.Tempo(0, float(bpm)))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("Piano", program=program, is_drum=False)
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    # Ticks are int32 in symusic: drop notes (only ever from hours of decoded
    # garbage) that would end past that, instead of letting them wrap negative.
    notes = notes[(notes[:, 0] + notes[:, 2]) * ticks < 2**31]
    if len(notes):
        track.notes = symusic.Note.from_numpy(
            time=(notes[:, 0] * ticks).astype(np.int32),
            duration=(notes[:, 2] * ticks).astype(np.int32),
            pitch=notes[:, 1].astype(np.int8),
            velocity=np.full(len(notes), velocity, dtype=np.int8),
        )
    score.tracks.append(track)
    return score


def score_bpm(score: symusic.Score) -> float:
    """The score's first tempo in quarter notes per minute (120 when it has none)."""
    if len(score.tempos) == 0:
        return DEFAULT_BPM
    qpm = float(score.tempos[0].qpm)
    return qpm if 1.0 <= qpm <= 1000.0 else DEFAULT_BPM


def save_midi(score: symusic.Score, path: str | os.PathLike[str], bpm: float | None = None) -> Path:
    """Write ``score`` to ``path`` atomically; ``bpm`` replaces its tempo when given."""
    path = Path(path)
    if bpm is not None:
        if not 1.0 <= bpm <= 1000.0:
            raise TunesmithError(f"--bpm: {bpm} is outside 1-1000")
        score = score.copy()
        score.tempos = [symusic.Tempo(0, float(bpm))]
    if path.parent and not path.parent.exists():
        raise TunesmithError(f"{path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        score.dump_midi(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
