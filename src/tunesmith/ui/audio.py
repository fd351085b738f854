"""Render a symusic Score to audio with a SoundFont, for the web UI's player.

The route is TinySoundFont (the ``tinysoundfont`` package on PyPI, installed with
``--no-deps`` because its metadata pulls ``pyaudio``, which only live playback
needs and which does not build without PortAudio's headers) and a General MIDI
SoundFont installed from Debian:

- ``fluid-soundfont-gm`` (MIT): ``FluidR3_GM.sf2``, preferred for its piano;
  142 MB on disk, parsed in about 2 s, once per process.
- ``timgm6mb-soundfont`` (GPL-2, a separate data file, not shipped with
  tunesmith): ``TimGM6mb.sf2``, 6 MB and instant to load.

MuseScore General (``musescore-general-soundfont-small``, an ``.sf3``) is not
searched for: through TinySoundFont its piano from G#5 (MIDI 80) up sounds as a
low rumble, not at its pitch (measured here); ``TUNESMITH_SOUNDFONT`` may still
name it.

``symusic``'s own synthesizer is not used: 0.6.0's ``Synthesizer.render`` fails and
0.5.9 plays some SoundFonts at wrong pitches. ``tests/test_ui_audio.py`` checks
pitches through the spectrum.

Sustain pedal (CC64) is applied by lengthening notes, because TinySoundFont ignores
the controller; other controllers are not played.
"""

from __future__ import annotations

import functools
import os
import tempfile
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import symusic

from tunesmith.errors import BadParameterError, TunesmithError

if TYPE_CHECKING:  # tinysoundfont is an optional dependency (the `app` extra)
    from tinysoundfont._tinysoundfont import SoundFont

ENV_SOUNDFONT = "TUNESMITH_SOUNDFONT"
INSTALL_HINT = (
    "install one with `apt-get install fluid-soundfont-gm` (or timgm6mb-soundfont), "
    f"or set {ENV_SOUNDFONT}=/path/to/font.sf2"
)
# Searched in order; the first that exists wins. Debian/Ubuntu first, then the
# places other distributions use.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
SAMPLE_RATES = (22050, 44100, 48000)
DRUM_CHANNEL = 9  # General MIDI's channel 10
DRUM_BANK = 128  # where SoundFonts keep percussion kits
PEAK_LEVEL = 0.9  # renders are peak-normalised: SoundFonts differ by 30 dB in level
SILENCE_DB = -60.0  # trailing audio quieter than this (relative to the peak) is cut
TAIL_SECONDS = 3.0  # release time rendered after the last note-off, before trimming
FADE_SECONDS = 0.01  # a short fade so the trimmed end does not click


def find_soundfont() -> Path:
    """The SoundFont to render with: ``$TUNESMITH_SOUNDFONT``, else the first installed one.

    Raises :class:`TunesmithError` saying how to install one when none is found.
    """
    env = os.environ.get(ENV_SOUNDFONT, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise TunesmithError(f"{ENV_SOUNDFONT}={env}: no such file")
        return path
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise TunesmithError(f"no SoundFont found: {INSTALL_HINT}")


@functools.lru_cache(maxsize=2)
def load_soundfont(path: Path) -> SoundFont:
    """Parse a SoundFont once per process; renders work on cheap clones of it.

    A clone shares the decoded samples but has its own voices and channels, so
    concurrent renders do not disturb each other.
    """
    try:
        from tinysoundfont._tinysoundfont import SoundFont
    except ImportError:
        raise TunesmithError(
            "audio needs tinysoundfont: pip install --no-deps 'tinysoundfont>=0.3.7'"
        ) from None
    if not Path(path).is_file():
        raise TunesmithError(f"{path}: no such SoundFont file")
    try:
        return SoundFont(str(path))
    except RuntimeError as err:  # the C++ loader reports a bad file this way
        raise TunesmithError(f"{path}: not a usable SoundFont ({err})") from None


def _sustained_offsets(
    onsets: np.ndarray, offsets: np.ndarray, pitches: np.ndarray, pedal: list[tuple[float, float]]
) -> np.ndarray:
    """Note-off times with the sustain pedal applied.

    A note released while the pedal is down sounds until the pedal comes up, but
    no later than the next onset of the same pitch (a re-strike ends it).
    """
    if not pedal or len(onsets) == 0:
        return offsets
    downs = np.array([p[0] for p in pedal])
    ups = np.array([p[1] for p in pedal])
    idx = np.searchsorted(downs, offsets, side="right") - 1
    held = (idx >= 0) & (offsets < ups[np.clip(idx, 0, None)])
    new_off = np.where(held, ups[np.clip(idx, 0, None)], offsets)
    # Clip at the next onset of the same pitch.
    order = np.lexsort((onsets, pitches))
    nxt = np.full(len(onsets), np.inf)
    same = pitches[order][1:] == pitches[order][:-1]
    nxt[order[:-1][same]] = onsets[order][1:][same]
    return np.maximum(np.minimum(new_off, nxt), offsets)


def _pedal_intervals(track: Any, end: float) -> list[tuple[float, float]]:
    """(down, up) times in seconds of a track's sustain pedal, from its CC64 events."""
    intervals, down = [], None
    for cc in sorted((c for c in track.controls if c.number == 64), key=lambda c: c.time):
        if cc.value >= 64 and down is None:
            down = float(cc.time)
        elif cc.value < 64 and down is not None:
            intervals.append((down, float(cc.time)))
            down = None
    if down is not None:
        intervals.append((down, end))
    return intervals


def _schedule(score: symusic.Score, max_seconds: float) -> tuple[np.ndarray, dict[int, tuple]]:
    """Note events sorted by time as rows ``(seconds, is_on, channel, key, velocity)``.

    Also returns the channel setup ``{channel: (bank, preset, is_drums)}``. Tracks
    with the same program share a channel; offs sort before ons at the same time
    so that a re-struck key sounds.
    """
    secs = score.to("second")
    end = float(secs.end())
    programs: dict[int, int] = {}
    setup: dict[int, tuple] = {}
    rows = []
    for track in secs.tracks:
        if len(track.notes) == 0:
            continue
        if track.is_drum:
            channel = DRUM_CHANNEL
            setup[channel] = (DRUM_BANK, 0, True)
        else:
            if track.program not in programs:
                free = [c for c in range(16) if c != DRUM_CHANNEL]
                programs[track.program] = free[len(programs) % len(free)]
            channel = programs[track.program]
            setup.setdefault(channel, (0, int(track.program), False))
        arr = track.notes.numpy()
        on = arr["time"].astype(np.float64)
        off = on + np.maximum(arr["duration"].astype(np.float64), 0.0)
        pitch = arr["pitch"].astype(np.int64)
        if not track.is_drum:
            off = _sustained_offsets(on, off, pitch, _pedal_intervals(track, end))
        vel = np.clip(arr["velocity"].astype(np.float64), 1, 127)
        n = len(on)
        ch = np.full(n, channel, dtype=np.float64)
        rows.append(np.stack([on, np.ones(n), ch, pitch, vel], axis=1))
        rows.append(np.stack([off, np.zeros(n), ch, pitch, np.zeros(n)], axis=1))
    if not rows:
        return np.zeros((0, 5)), setup
    events = np.concatenate(rows)
    events = events[events[:, 0] < max_seconds]
    events = events[np.lexsort((events[:, 1], events[:, 0]))]
    return events, setup


def render_score(
    score: symusic.Score,
    sample_rate: int = 44100,
    stereo: bool = True,
    soundfont: str | os.PathLike[str] | None = None,
    max_seconds: float = 900.0,
) -> tuple[int, np.ndarray]:
    """Render ``score`` to ``(sample_rate, float32 array)``, the format ``gr.Audio`` takes.

    The array is ``(samples, 2)`` when ``stereo`` else ``(samples,)``, peak-normalised
    to 0.9 and with trailing silence trimmed. Notes starting after ``max_seconds``
    are dropped, which bounds the memory a long upload can take. A score without
    notes renders to an empty array.
    """
    if sample_rate not in SAMPLE_RATES:
        raise BadParameterError(f"sample rate {sample_rate} is not one of {SAMPLE_RATES}")
    if not max_seconds > 0:
        raise BadParameterError(f"max_seconds must be positive, got {max_seconds}")
    base = load_soundfont(Path(soundfont) if soundfont is not None else find_soundfont())
    # Imported here, after load_soundfont has turned a missing package into a message.
    from tinysoundfont._tinysoundfont import OutputMode, SoundFont

    channels = 2 if stereo else 1
    events, setup = _schedule(score, max_seconds)
    if len(events) == 0:
        return sample_rate, np.zeros((0, channels) if stereo else (0,), dtype=np.float32)

    synth = SoundFont(base)  # a clone: shares samples, owns its voices
    mode = OutputMode.StereoInterleaved if stereo else OutputMode.Mono
    synth.set_output(mode, sample_rate, 0.0)
    synth.set_max_voices(256)
    for channel, (bank, preset, is_drums) in setup.items():
        if base.get_preset_index(bank, preset) < 0:
            bank, preset = (DRUM_BANK, 0) if is_drums else (0, 0)
        if base.get_preset_index(bank, preset) >= 0:
            synth.channel_set_bank(channel, bank)
            synth.channel_set_preset_number(channel, preset, is_drums)

    positions = np.round(events[:, 0] * sample_rate).astype(np.int64)
    total = int(positions[-1] + TAIL_SECONDS * sample_rate)
    out = np.zeros(total * channels, dtype=np.float32)
    view = memoryview(out).cast("B")
    bytes_per_frame = 4 * channels
    cursor = 0
    for (_, is_on, channel, key, velocity), pos in zip(events, positions, strict=True):
        if pos > cursor:
            synth.render(view[cursor * bytes_per_frame : pos * bytes_per_frame])
            cursor = pos
        if is_on:
            synth.channel_note_on(int(channel), int(key), float(velocity) / 127.0)
        else:
            synth.channel_note_off(int(channel), int(key))
    synth.render(view[cursor * bytes_per_frame :])

    audio = out.reshape(-1, 2) if stereo else out
    return sample_rate, _finish(audio, sample_rate)


def _finish(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Peak-normalise, cut the trailing silence and fade out the last 10 ms."""
    level = np.abs(audio).max(axis=1) if audio.ndim == 2 else np.abs(audio)
    peak = float(level.max()) if len(level) else 0.0
    if peak <= 0.0:
        return audio[:0]
    audio = audio * np.float32(PEAK_LEVEL / peak)
    loud = np.flatnonzero(level > peak * 10 ** (SILENCE_DB / 20))
    audio = audio[: int(loud[-1]) + 1].copy()
    fade = min(len(audio), int(FADE_SECONDS * sample_rate))
    if fade:
        ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
        audio[-fade:] *= ramp[:, None] if audio.ndim == 2 else ramp
    return audio.astype(np.float32, copy=False)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as 16-bit PCM samples (what WAV files and browsers play)."""
    return (
        (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype(np.int16)
    )


def write_wav(path: str | os.PathLike[str], sample_rate: int, audio: np.ndarray) -> Path:
    """Write float audio in [-1, 1] (mono or ``(n, 2)``) as 16-bit PCM WAV, atomically."""
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2) or (audio.ndim == 2 and audio.shape[1] not in (1, 2)):
        raise BadParameterError(f"audio must be (n,) or (n, 1|2), got shape {audio.shape}")
    pcm = to_int16(audio).astype("<i2")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        with wave.open(tmp, "wb") as wav:
            wav.setnchannels(1 if audio.ndim == 1 else audio.shape[1])
            wav.setsampwidth(2)
            wav.setframerate(int(sample_rate))
            wav.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
