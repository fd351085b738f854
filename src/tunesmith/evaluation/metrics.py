"""Musical statistics of pieces on the 16th-note grid, and their comparison between two sets.

Definitions follow MusPy (``muspy.metrics``) and Yang & Lerch, "On the evaluation
of generative models in music" (2020), computed on :func:`grid_notes` rows
``(step, pitch, dur)`` with 4 steps per beat:

- ``pitch_class_entropy``: Shannon entropy (bits) of the pitch-class histogram.
- ``pitch_range``: highest minus lowest pitch (0 without notes, as MusPy).
- ``n_pitch_classes`` / ``n_pitches``: distinct pitch classes / pitches used.
- ``polyphony``: mean number of sounding pitches over the steps where any sounds.
- ``note_density``: notes per beat over the piece's span (step 0 to the last end).
- ``empty_beat_rate``: share of the piece's beats in which no note sounds.
- ``scale_consistency``: the largest share of notes inside one major or minor scale.
- ``groove_consistency``: 1 minus the mean Hamming distance between the onset
  patterns of neighbouring bars, per bar position.
- ``repeated_bar_rate``, ``bass_share``, ``long_note_share``: structure and
  texture, defined in :mod:`~tunesmith.evaluation.texture`.
- ``pitch_class_histogram`` (12 bins) and ``duration_histogram`` (:data:`DURATION_BINS`),
  normalised note counts (Yang & Lerch's PCH and note-length histogram).

One deliberate difference from MusPy: time spans are half-open. A note that ends
on a beat or bar line does not reach into the next one, and a piece that ends on
a bar line has no extra empty bar; MusPy counts both (so a quarter note followed by
a quarter rest leaves no empty beat there). The tests check every value against
MusPy's, the two time-span ones on notes shortened by one tick, which is exactly
this convention.

Bars are :data:`STEPS_PER_BAR` (4/4) unless told otherwise: tunesmith writes 4/4, and
corpora's time signatures are unreliable (617 of POP909's files say 1/4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import symusic

from tunesmith.evaluation import texture
from tunesmith.evaluation.overlap import histogram_overlap, overlapping_area
from tunesmith.tokenization.midi_io import STEPS_PER_BAR, STEPS_PER_QUARTER, grid_notes

SCALAR_METRICS = (
    "pitch_class_entropy",
    "pitch_range",
    "n_pitch_classes",
    "n_pitches",
    "polyphony",
    "note_density",
    "empty_beat_rate",
    "scale_consistency",
    "groove_consistency",
    "repeated_bar_rate",
    "bass_share",
    "long_note_share",
)
HISTOGRAM_METRICS = ("pitch_class_histogram", "duration_histogram")
# Lower edges (in steps) of the duration bins: 16th, 8th, dotted 8th, quarter,
# up to a dotted quarter, up to a half, up to a dotted half, up to a whole, up to
# two bars, longer. Yang & Lerch's triplet and dotted-16th classes cannot occur on
# the 16th grid.
DURATION_BINS = (1, 2, 3, 4, 5, 7, 9, 13, 17, 33)
DURATION_LABELS = ("1/16", "1/8", "3/16", "1/4", "3/8", "1/2", "3/4", "1", "2", ">2")

_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
_MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
# (24, 12): row r is the scale mask of root r % 12, major for r < 12, minor after.
_SCALES = np.stack([np.roll(m, root) for m in (_MAJOR, _MINOR) for root in range(12)])


def as_grid(piece: symusic.Score | np.ndarray) -> np.ndarray:
    """``(N, 3)`` int64 ``(step, pitch, dur)`` rows of a Score or of an existing grid."""
    if isinstance(piece, np.ndarray):
        return np.asarray(piece, dtype=np.int64).reshape(-1, 3)
    return grid_notes(piece).astype(np.int64)


def _span(notes: np.ndarray) -> int:
    """Steps from 0 to the end of the last note."""
    return int((notes[:, 0] + notes[:, 2]).max()) if len(notes) else 0


def pitch_class_entropy(notes: np.ndarray) -> float:
    """Entropy in bits of the notes' pitch classes; NaN without notes."""
    if len(notes) == 0:
        return math.nan
    p = np.bincount(notes[:, 1] % 12, minlength=12) / len(notes)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def pitch_range(notes: np.ndarray) -> int:
    """Highest minus lowest pitch; 0 without notes (as MusPy)."""
    return int(notes[:, 1].max() - notes[:, 1].min()) if len(notes) else 0


def n_pitch_classes(notes: np.ndarray) -> int:
    """Number of distinct pitch classes."""
    return len(np.unique(notes[:, 1] % 12))


def n_pitches(notes: np.ndarray) -> int:
    """Number of distinct pitches (Yang & Lerch's pitch count)."""
    return len(np.unique(notes[:, 1]))


def _pianoroll(notes: np.ndarray) -> np.ndarray:
    """Boolean ``(span, 128)`` roll: a pitch is on at the steps ``[step, step + dur)``."""
    span = _span(notes)
    diff = np.zeros((span + 1, 128), dtype=np.int32)
    np.add.at(diff, (notes[:, 0], notes[:, 1]), 1)
    np.add.at(diff, (notes[:, 0] + notes[:, 2], notes[:, 1]), -1)
    return np.cumsum(diff, axis=0)[:span] > 0


def polyphony(notes: np.ndarray) -> float:
    """Mean number of sounding pitches over the steps where at least one sounds; NaN if none."""
    if len(notes) == 0:
        return math.nan
    on = _pianoroll(notes).sum(axis=1)
    return float(on.sum() / np.count_nonzero(on))


def note_density(notes: np.ndarray) -> float:
    """Notes per beat over the span from step 0 to the last note's end; NaN without notes."""
    if len(notes) == 0:
        return math.nan
    return len(notes) / (_span(notes) / STEPS_PER_QUARTER)


def empty_beat_rate(notes: np.ndarray) -> float:
    """Share of the beats from step 0 to the last note's end in which no note sounds."""
    if len(notes) == 0:
        return math.nan
    n_beats = -(-_span(notes) // STEPS_PER_QUARTER)
    diff = np.zeros(n_beats + 1, dtype=np.int64)
    # Half-open spans: a note covers the beats from its start's to its last step's.
    np.add.at(diff, notes[:, 0] // STEPS_PER_QUARTER, 1)
    np.add.at(diff, (notes[:, 0] + notes[:, 2] - 1) // STEPS_PER_QUARTER + 1, -1)
    covered = np.cumsum(diff)[:n_beats] > 0
    return float(1.0 - covered.sum() / n_beats)


def scale_consistency(notes: np.ndarray) -> float:
    """Largest share of notes in one of the 24 major and minor scales; NaN without notes."""
    if len(notes) == 0:
        return math.nan
    counts = np.bincount(notes[:, 1] % 12, minlength=12)
    return float((_SCALES @ counts).max() / len(notes))


def groove_consistency(notes: np.ndarray, bar_steps: int = STEPS_PER_BAR) -> float:
    """1 - mean Hamming distance of neighbouring bars' onset patterns; NaN under two bars."""
    if bar_steps < 1:
        raise ValueError(f"bar_steps must be positive, got {bar_steps}")
    n_bars = -(-_span(notes) // bar_steps)
    if n_bars < 2:
        return math.nan
    patterns = np.zeros((n_bars, bar_steps), dtype=bool)
    bar, pos = np.divmod(notes[:, 0], bar_steps)
    patterns[bar, pos] = True
    distance = np.count_nonzero(patterns[:-1] != patterns[1:])
    return float(1.0 - distance / (bar_steps * (n_bars - 1)))


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Normalised counts of the 12 pitch classes (all zero without notes)."""
    counts = np.bincount(notes[:, 1] % 12, minlength=12).astype(np.float64)
    return counts / max(len(notes), 1)


def duration_histogram(notes: np.ndarray) -> np.ndarray:
    """Normalised counts of note durations in the :data:`DURATION_BINS` classes."""
    bins = np.searchsorted(np.array(DURATION_BINS), notes[:, 2], side="right") - 1
    counts = np.bincount(np.clip(bins, 0, None), minlength=len(DURATION_BINS)).astype(np.float64)
    return counts / max(len(notes), 1)


def piece_metrics(
    piece: symusic.Score | np.ndarray, bar_steps: int = STEPS_PER_BAR
) -> dict[str, float]:
    """Every scalar metric of one piece, by the names in :data:`SCALAR_METRICS`."""
    notes = as_grid(piece)
    return {
        "pitch_class_entropy": pitch_class_entropy(notes),
        "pitch_range": float(pitch_range(notes)),
        "n_pitch_classes": float(n_pitch_classes(notes)),
        "n_pitches": float(n_pitches(notes)),
        "polyphony": polyphony(notes),
        "note_density": note_density(notes),
        "empty_beat_rate": empty_beat_rate(notes),
        "scale_consistency": scale_consistency(notes),
        "groove_consistency": groove_consistency(notes, bar_steps),
        "repeated_bar_rate": texture.repeated_bar_rate(notes, bar_steps),
        "bass_share": texture.bass_share(notes),
        "long_note_share": texture.long_note_share(notes),
    }


@dataclass
class MetricSet:
    """Metrics of a set of pieces: one value (or histogram row) per piece.

    ``weights`` (default equal) weigh the rows and ``independent`` (default all) counts the
    independent pieces among them: real excerpts cut to several lengths are one row per
    excerpt and length (:func:`~tunesmith.evaluation.equal_length.real_at_lengths`).
    """

    scalars: dict[str, np.ndarray]  # name -> (n_rows,) float64, NaN where undefined
    histograms: dict[str, np.ndarray]  # name -> (n_rows, bins) float64
    weights: np.ndarray | None = None  # (n_rows,) summing to 1
    independent: int | None = None

    def __len__(self) -> int:
        """The pieces: the independent ones."""
        return self.independent or len(next(iter(self.scalars.values())))

    def row_weights(self) -> np.ndarray:
        """``(n_rows,)`` each row's weight, summing to 1."""
        n = len(next(iter(self.scalars.values())))
        return np.full(n, 1.0 / max(n, 1)) if self.weights is None else self.weights

    def summary(self) -> dict[str, dict[str, float]]:
        """(Weighted) mean and standard deviation of each scalar metric over the pieces that
        define it."""
        out = {}
        for name, values in self.scalars.items():
            keep = ~np.isnan(values)
            v, w = values[keep], self.row_weights()[keep]
            mean = float(w @ v / w.sum()) if w.sum() > 0 else math.nan
            out[name] = {
                "mean": mean,
                "std": math.sqrt(float(w @ (v - mean) ** 2 / w.sum())) if w.sum() > 0 else math.nan,
                "n": min(int(keep.sum()), len(self)),
            }
        return out


def compute_metrics(
    pieces: Iterable[symusic.Score | np.ndarray], bar_steps: int = STEPS_PER_BAR
) -> MetricSet:
    """Scalar metrics and histograms of every piece (Scores or grids)."""
    grids = [as_grid(p) for p in pieces]
    rows = [piece_metrics(g, bar_steps) for g in grids]
    scalars = {name: np.array([r[name] for r in rows], dtype=np.float64) for name in SCALAR_METRICS}
    histograms = {
        "pitch_class_histogram": np.array([pitch_class_histogram(g) for g in grids]).reshape(
            len(grids), 12
        ),
        "duration_histogram": np.array([duration_histogram(g) for g in grids]).reshape(
            len(grids), len(DURATION_BINS)
        ),
    }
    return MetricSet(scalars, histograms)


def compare_metrics(real: MetricSet, generated: MetricSet) -> dict[str, dict[str, float]]:
    """Per metric: both sets' mean and standard deviation and their overlapping area (the real
    set may be weighted; the generated set's pieces count once each)."""
    out: dict[str, dict[str, float]] = {}
    real_summary, gen_summary = real.summary(), generated.summary()
    for name in SCALAR_METRICS:
        out[name] = {
            "real_mean": real_summary[name]["mean"],
            "real_std": real_summary[name]["std"],
            "generated_mean": gen_summary[name]["mean"],
            "generated_std": gen_summary[name]["std"],
            "overlap": overlapping_area(
                real.scalars[name], generated.scalars[name], real.weights, real.independent
            ),
        }
    for name in HISTOGRAM_METRICS:
        out[name] = {
            "overlap": histogram_overlap(
                real.histograms[name], generated.histograms[name], real.weights
            )
        }
    return out
