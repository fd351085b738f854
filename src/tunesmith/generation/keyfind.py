"""The key of a passage by the Krumhansl-Kessler key-finding algorithm.

The passage's pitch-class distribution, each note weighted by its duration, is
correlated (Pearson) with the 24 rotations of Krumhansl and Kessler's major and
minor key profiles (probe-tone ratings, 1982); the best correlation names the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunesmith.generation.constraints import MODES

# Krumhansl & Kessler (1982), ratings of the 12 pitch classes from the tonic up.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (C = 0), ``"major"`` or ``"minor"``, and how well it fits (-1..1)."""

    tonic: int
    mode: str
    correlation: float

    @property
    def scale(self) -> frozenset[int]:
        """The key's pitch classes (natural minor for a minor key)."""
        return frozenset((self.tonic + i) % 12 for i in MODES[self.mode])

    @property
    def name(self) -> str:
        """``TONIC:MODE`` as ``--scale`` takes it, e.g. ``Eb:major``."""
        return f"{NAMES[self.tonic]}:{self.mode}"


def pitch_class_weights(notes: np.ndarray) -> np.ndarray:
    """``(12,)`` total duration (steps) of the notes of each pitch class; rows are ``(step, pitch, dur)``."""
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    return np.bincount(notes[:, 1] % 12, weights=notes[:, 2], minlength=12).astype(np.float64)


def key_correlations(weights: np.ndarray) -> np.ndarray:
    """``(2, 12)`` correlation of ``weights`` with each major (row 0) and minor (row 1) key."""
    profiles = np.stack([MAJOR_PROFILE, MINOR_PROFILE])  # (2, 12)
    # Key k's profile rated pitch class p as profile[(p - k) % 12].
    idx = (np.arange(12)[None, :] - np.arange(12)[:, None]) % 12  # (key, pc)
    rotated = profiles[:, idx]  # (2, key, pc)
    x = weights - weights.mean()
    y = rotated - rotated.mean(-1, keepdims=True)
    denom = np.sqrt((x**2).sum() * (y**2).sum(-1))
    return (y @ x) / np.where(denom > 0, denom, 1.0)


def find_key(notes: np.ndarray) -> Key | None:
    """The best-fitting key of ``(step, pitch, dur)`` rows; None when no pitch class stands out.

    Ties go to the first of C major .. B major, then C minor .. B minor.
    """
    weights = pitch_class_weights(notes)
    if np.ptp(weights) == 0:  # no notes, or every pitch class equally long: no key to find
        return None
    corr = key_correlations(weights)
    mode, tonic = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return Key(int(tonic), ("major", "minor")[int(mode)], float(corr[mode, tonic]))
