"""PNG plots of an evaluation: each metric generated vs real, and piano rolls of samples.

Matplotlib's object API on an Agg canvas (no pyplot): no global figure registry,
nothing shared between calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tunesmith.evaluation.metrics import DURATION_LABELS, MetricSet
from tunesmith.evaluation.overlap import mean_histogram
from tunesmith.tokenization.midi_io import STEPS_PER_BAR

REAL_COLOUR = "#4c72b0"
GEN_COLOUR = "#e4572e"
PROMPT_COLOUR = "#7f8c9a"
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def scalar_histogram(
    name: str, real: MetricSet, generated: MetricSet, overlap: float, path: str | Path
) -> Path:
    """Histograms of one scalar metric, real (weighted as compared) and generated on shared
    bins, as densities."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    sets = [(*_defined(m, name), colour, label) for m, colour, label in (
        (real, REAL_COLOUR, "real (held out)"), (generated, GEN_COLOUR, "generated"))]  # fmt: skip
    both = np.concatenate([values for values, *_ in sets])
    if len(both):
        low, high = float(both.min()), float(both.max())
        bins = np.linspace(low, high if high > low else low + 1, 21)
        for values, weights, n, colour, label in sets:
            if len(values):
                ax.hist(values, bins=bins, weights=weights, density=True, alpha=0.55,
                        color=colour, label=f"{label}, n={n}")  # fmt: skip
        ax.legend(fontsize=8)
    ax.set_title(f"{name}  (overlapping area {overlap:.2f})", fontsize=10)
    ax.set_ylabel("density")
    fig.tight_layout()
    return _save(fig, Path(path))


def _defined(metrics: MetricSet, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A scalar metric's defined values, their weights and how many pieces gave them."""
    values = metrics.scalars[name]
    keep = ~np.isnan(values)
    return values[keep], metrics.row_weights()[keep], min(int(keep.sum()), len(metrics))


def histogram_bars(
    name: str, real: MetricSet, generated: MetricSet, overlap: float, path: str | Path
) -> Path:
    """Mean pitch-class or duration histogram, real (weighted as compared) and generated bars
    side by side."""
    labels = PITCH_CLASSES if real.histograms[name].shape[1] == 12 else DURATION_LABELS
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for offset, metrics, colour, label in (
        (-0.2, real, REAL_COLOUR, "real"),
        (0.2, generated, GEN_COLOUR, "generated"),
    ):
        mean = mean_histogram(metrics.histograms[name], metrics.row_weights())
        if mean is not None:
            ax.bar(x + offset, mean, width=0.4, color=colour, label=label)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("share of notes")
    ax.set_title(f"{name}  (overlap {overlap:.2f})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))


def metric_plots(
    real: MetricSet,
    generated: MetricSet,
    comparison: dict[str, dict[str, float]],
    folder: str | Path,
) -> dict[str, str]:
    """One PNG per metric in ``folder``; returns metric name -> file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in real.scalars:
        path = folder / f"metric_{name}.png"
        scalar_histogram(name, real, generated, comparison[name]["overlap"], path)
        out[name] = path.name
    for name in real.histograms:
        path = folder / f"metric_{name}.png"
        histogram_bars(name, real, generated, comparison[name]["overlap"], path)
        out[name] = path.name
    return out


def pianoroll_png(grid: np.ndarray, n_prompt_notes: int, title: str, path: str | Path) -> Path:
    """A piano roll of a piece (prompt grey, new notes orange, bar lines) saved as PNG.

    Drawn here rather than with ``tunesmith.ui.pianoroll``: the UI layer sits
    above evaluation, and lower layers never import higher ones.
    """
    from matplotlib.collections import PolyCollection

    notes = np.asarray(grid, dtype=np.int64).reshape(-1, 3)
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot()
    end = int((notes[:, 0] + notes[:, 2]).max()) if len(notes) else STEPS_PER_BAR
    end = max(STEPS_PER_BAR, -(-end // STEPS_PER_BAR) * STEPS_PER_BAR)
    for rows, colour in (
        (notes[:n_prompt_notes], PROMPT_COLOUR),
        (notes[n_prompt_notes:], GEN_COLOUR),
    ):
        if len(rows):
            x0, x1 = rows[:, 0].astype(float), (rows[:, 0] + rows[:, 2]).astype(float) - 0.1
            y0, y1 = rows[:, 1] - 0.4, rows[:, 1] + 0.4
            boxes = np.stack(
                [np.stack(c, 1) for c in ((x0, y0), (x0, y1), (x1, y1), (x1, y0))], axis=1
            )
            ax.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors="none"))
    for x in range(0, end + 1, STEPS_PER_BAR):
        ax.axvline(x, color="#c9ced6", linewidth=0.6, zorder=0)
    low, high = (int(notes[:, 1].min()), int(notes[:, 1].max())) if len(notes) else (60, 72)
    ax.set_xlim(0, end)
    ax.set_ylim(low - 2, high + 2)
    ax.set_xlabel("16th-note steps (bar lines every 16)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))
