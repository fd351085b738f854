"""SoundFont rendering: pitch through the spectrum, timing, trimming, SoundFont lookup."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import symusic

from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.tokenization.midi_io import score_from_grid
from tunesmith.ui import audio

pytest.importorskip("tinysoundfont", reason="audio needs: pip install --no-deps tinysoundfont")


@pytest.fixture(scope="module")
def soundfont():
    try:
        return audio.find_soundfont()
    except TunesmithError as err:
        pytest.skip(f"no SoundFont installed: {err}")


def fundamental(signal: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(strongest spectral peak, estimated fundamental) in Hz.

    Piano samples often have a 2nd or 3rd harmonic stronger than the fundamental,
    so the fundamental is the lowest sub-multiple of the strongest peak that still
    carries at least 10% of its magnitude.
    """
    n = 1 << 18  # zero padding: ~0.17 Hz bins at 44.1 kHz
    windowed = signal * np.hanning(len(signal))
    spectrum = np.abs(np.fft.rfft(windowed, n=n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    band = (freqs >= 20) & (freqs <= 5000)
    peak = float(freqs[band][np.argmax(spectrum[band])])
    top = spectrum[band].max()
    best = peak
    for divisor in (2, 3, 4):
        sub = peak / divisor
        near = (freqs > sub * 0.985) & (freqs < sub * 1.015)
        if sub >= 20 and spectrum[near].max() > 0.1 * top:
            best = float(freqs[near][np.argmax(spectrum[near])])
    return peak, best


def one_note(pitch: int, steps: int = 8) -> symusic.Score:
    # 120 bpm: a 16th-note step is 0.125 s, so 8 steps last one second.
    return score_from_grid(np.array([[0, pitch, steps]]), bpm=120)


@pytest.mark.parametrize(
    ("pitch", "hz"), [(69, 440.0), (72, 523.251), (57, 220.0), (60, 261.626), (81, 880.0)]
)
def test_rendered_note_has_the_right_pitch(soundfont, pitch, hz):
    sample_rate, samples = audio.render_score(one_note(pitch), sample_rate=44100, stereo=False)
    assert sample_rate == 44100 and samples.dtype == np.float32 and samples.ndim == 1
    segment = samples[int(0.05 * sample_rate) : int(0.9 * sample_rate)]
    peak, f0 = fundamental(segment, sample_rate)
    assert abs(f0 / hz - 1) < 0.015, f"pitch {pitch}: fundamental {f0:.1f} Hz, want {hz} Hz"
    harmonic = round(peak / hz)
    assert harmonic >= 1 and abs(peak / (harmonic * hz) - 1) < 0.015, f"peak {peak:.1f} Hz"


def test_every_register_peaks_on_a_harmonic_of_its_pitch(soundfont):
    # Low piano notes carry little energy at the fundamental, so across the keyboard
    # the check is that the strongest peak is a harmonic of the note (a wrong
    # pitch, even by a semitone, misses every harmonic by more than 1.5%).
    for pitch in range(24, 109, 7):
        hz = 440.0 * 2 ** ((pitch - 69) / 12)
        sample_rate, samples = audio.render_score(one_note(pitch), stereo=False)
        peak, _ = fundamental(
            samples[int(0.05 * sample_rate) : int(0.9 * sample_rate)], sample_rate
        )
        harmonic = max(1, round(peak / hz))
        assert harmonic <= 8 and abs(peak / (harmonic * hz) - 1) < 0.02, (pitch, hz, peak)


def test_notes_sound_at_their_times(soundfont):
    # A4 for one second, then C5 from 1.5 s: each window hears its own note.
    score = score_from_grid(np.array([[0, 69, 8], [12, 72, 8]]), bpm=120)
    sample_rate, samples = audio.render_score(score, sample_rate=22050, stereo=True)
    assert samples.shape[1] == 2
    mono = samples.mean(axis=1)
    first = mono[int(0.05 * sample_rate) : int(0.9 * sample_rate)]
    second = mono[int(1.55 * sample_rate) : int(2.4 * sample_rate)]
    assert abs(fundamental(first, sample_rate)[1] / 440.0 - 1) < 0.015
    assert abs(fundamental(second, sample_rate)[1] / 523.251 - 1) < 0.015
    assert abs(mono[: int(1.45 * sample_rate)]).max() > 0  # not silent before C5


def test_trailing_silence_is_trimmed_and_level_normalised(soundfont):
    sample_rate, samples = audio.render_score(one_note(69, steps=4), stereo=False)
    seconds = len(samples) / sample_rate
    # The note ends at 0.5 s; the release may ring a little, never the full tail.
    assert 0.5 <= seconds < 0.5 + audio.TAIL_SECONDS
    assert np.isclose(np.abs(samples).max(), audio.PEAK_LEVEL, atol=1e-3)
    assert abs(samples[-1]) < 1e-3  # faded out, no click


def test_sustain_pedal_lengthens_notes(soundfont):
    dry = one_note(60, steps=2)
    wet = dry.copy()
    wet.tracks[0].controls.append(symusic.ControlChange(0, 64, 127))
    wet.tracks[0].controls.append(symusic.ControlChange(4 * 480, 64, 0))  # up at 2 s
    _, dry_audio = audio.render_score(dry, stereo=False)
    sample_rate, wet_audio = audio.render_score(wet, stereo=False)
    assert len(wet_audio) > len(dry_audio)
    assert np.abs(wet_audio[int(1.5 * sample_rate) : int(1.9 * sample_rate)]).max() > 0.01


def test_empty_score_renders_empty(soundfont):
    sample_rate, samples = audio.render_score(score_from_grid(np.zeros((0, 3))))
    assert sample_rate == 44100 and samples.shape == (0, 2)


def test_bad_sample_rate():
    with pytest.raises(BadParameterError, match="sample rate"):
        audio.render_score(one_note(60), sample_rate=12345)


def test_write_wav_round_trip(tmp_path, soundfont):
    sample_rate, samples = audio.render_score(one_note(69), sample_rate=22050)
    path = audio.write_wav(tmp_path / "a.wav", sample_rate, samples)
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 22050 and wav.getnchannels() == 2
        assert wav.getnframes() == len(samples)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_soundfont_env_override(monkeypatch, soundfont):
    monkeypatch.setenv(audio.ENV_SOUNDFONT, str(soundfont))
    assert audio.find_soundfont() == soundfont
    monkeypatch.setenv(audio.ENV_SOUNDFONT, "/nonexistent/font.sf2")
    with pytest.raises(TunesmithError, match="TUNESMITH_SOUNDFONT"):
        audio.find_soundfont()


def test_missing_soundfont_says_how_to_install(monkeypatch):
    monkeypatch.delenv(audio.ENV_SOUNDFONT, raising=False)
    monkeypatch.setattr(audio, "SOUNDFONT_CANDIDATES", ())
    with pytest.raises(TunesmithError, match="apt-get install fluid-soundfont-gm"):
        audio.find_soundfont()


def test_not_a_soundfont(tmp_path):
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(TunesmithError, match="bad.sf2"):
        audio.load_soundfont(bad)
