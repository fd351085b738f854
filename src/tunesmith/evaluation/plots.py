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
    name: str, real: np.ndarray, generated: np.ndarray, overlap: float, path: str | Path
) -> Path:
    """Histograms of one scalar metric, real and generated on shared bins, as densities."""
    real, generated = real[~np.isnan(real)], generated[~np.isnan(generated)]
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    both = np.concatenate([real, generated])
    if len(both):
        low, high = float(both.min()), float(both.max())
        bins = np.linspace(low, high if high > low else low + 1, 21)
        for values, colour, label in (
            (real, REAL_COLOUR, "real (held out)"),
            (generated, GEN_COLOUR, "generated"),
        ):
            if len(values):
                ax.hist(
                    values,
                    bins=bins,
                    density=True,
                    alpha=0.55,
                    color=colour,
                    label=f"{label}, n={len(values)}",
                )
        ax.legend(fontsize=8)
    ax.set_title(f"{name}  (overlapping area {overlap:.2f})", fontsize=10)
    ax.set_ylabel("density")
    fig.tight_layout()
    return _save(fig, Path(path))


def histogram_bars(
    name: str, real_rows: np.ndarray, gen_rows: np.ndarray, overlap: float, path: str | Path
) -> Path:
    """Mean pitch-class or duration histogram, real and generated bars side by side."""
    labels = PITCH_CLASSES if real_rows.shape[1] == 12 else DURATION_LABELS
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for offset, rows, colour, label in (
        (-0.2, real_rows, REAL_COLOUR, "real"),
        (0.2, gen_rows, GEN_COLOUR, "generated"),
    ):
        rows = rows[rows.sum(axis=1) > 0] if len(rows) else rows
        if len(rows):
            ax.bar(x + offset, rows.mean(axis=0), width=0.4, color=colour, label=label)
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
    for name, values in real.scalars.items():
        path = folder / f"metric_{name}.png"
        scalar_histogram(name, values, generated.scalars[name], comparison[name]["overlap"], path)
        out[name] = path.name
    for name, rows in real.histograms.items():
        path = folder / f"metric_{name}.png"
        histogram_bars(name, rows, generated.histograms[name], comparison[name]["overlap"], path)
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
