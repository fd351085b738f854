"""Musical rules as parsed values: scales and pitch ranges (turned into masks elsewhere)."""

from __future__ import annotations

from tunesmith.errors import BadParameterError
from tunesmith.tokenization.midi_io import PIANO_HIGH, PIANO_LOW

TONICS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic_minor": (0, 2, 3, 5, 7, 9, 11),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}


def parse_scale(text: str) -> frozenset[int]:
    """Pitch classes of ``TONIC:MODE`` (e.g. ``C:major``, ``F#:dorian``, ``Bb:minor``)."""
    tonic, sep, mode = text.strip().partition(":")
    mode = (mode or "").strip().lower().replace("-", "_").replace(" ", "_")
    tonic = tonic.strip()
    if not sep or not tonic or tonic[0].upper() not in TONICS or mode not in MODES:
        raise BadParameterError(
            f"unknown scale {text!r} (use TONIC:MODE, e.g. C:major, A:minor, D:dorian; "
            f"modes: {', '.join(MODES)})",
            field="scale",
        )
    pc = TONICS[tonic[0].upper()]
    for accidental in tonic[1:]:
        if accidental in "#♯":
            pc += 1
        elif accidental in "b♭":
            pc -= 1
        else:
            raise BadParameterError(f"unknown tonic {tonic!r} in {text!r}", field="scale")
    return frozenset((pc + step) % 12 for step in MODES[mode])


def parse_pitch_range(text: str | tuple[int, int]) -> tuple[int, int]:
    """``LO-HI`` MIDI pitches (inclusive), within the piano's 21-108."""
    if isinstance(text, tuple):
        lo, hi = text
    else:
        parts = text.replace(" ", "").split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise BadParameterError(f"{text!r} is not LO-HI (e.g. 48-84)", field="pitch_range")
        lo, hi = int(parts[0]), int(parts[1])
    if not PIANO_LOW <= lo <= hi <= PIANO_HIGH:
        raise BadParameterError(
            f"{lo}-{hi} must satisfy {PIANO_LOW} <= LO <= HI <= {PIANO_HIGH} (the piano's range)",
            field="pitch_range",
        )
    return lo, hi
