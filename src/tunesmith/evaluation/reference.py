"""How close real music itself comes to the held-out excerpts: the scale of the KDE overlap.

The overlap of two small samples stays below 1 even when both come from one source
(each is a handful of pieces), so a generated set's mean overlap means little
without the overlap that real pieces reach in its place. Here sets of real pieces
from the *training* files, as many as a setting has pieces and as long, are measured
against the same held-out excerpts in several random draws:

- ``excerpts``: consecutive excerpts from anywhere in the training files (what a
  continuation of a piece is compared with);
- ``openings``: each training file's first notes (what a piece generated from nothing
  is: an opening).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesmith.evaluation.metrics import MetricSet, compare_metrics, compute_metrics
from tunesmith.evaluation.summary import overlap_summary

DRAWS = 20  # random sets per kind: the spread of a set's overlap, not only its mean


def _rows(metrics: MetricSet, rows: np.ndarray) -> MetricSet:
    """The pieces ``rows`` of an unweighted set."""
    return MetricSet(
        {k: v[rows] for k, v in metrics.scalars.items()},
        {k: v[rows] for k, v in metrics.histograms.items()},
    )


def _draws(
    held_out: MetricSet, pool: Sequence[np.ndarray], pieces: int, rng: np.random.Generator
) -> dict[str, Any] | None:
    """Mean KDE overlap of ``DRAWS`` sets of ``pieces`` pieces drawn from ``pool``."""
    if not pool:
        return None
    metrics, k = compute_metrics(pool), min(pieces, len(pool))
    means = []
    for _ in range(DRAWS):
        chosen = _rows(metrics, rng.choice(len(pool), size=k, replace=False))
        means.append(overlap_summary(compare_metrics(held_out, chosen))["mean_overlap"])
    values = np.array([m for m in means if m is not None], dtype=np.float64)
    if not len(values):
        return None
    return {
        "pieces": k, "pool": len(pool), "draws": len(values), "mean": float(values.mean()),
        "std": float(values.std()), "min": float(values.min()), "max": float(values.max()),
    }  # fmt: skip


def reference_overlaps(
    held_out: MetricSet,
    excerpts: Sequence[np.ndarray],
    openings: Sequence[np.ndarray],
    pieces: int,
    seed: int = 0,
) -> dict[str, dict[str, Any] | None]:
    """Per kind (training ``excerpts``, training ``openings``): the mean KDE overlap with the
    ``held_out`` excerpts of sets of ``pieces`` real pieces, over :data:`DRAWS` draws (mean,
    std, min, max); None for a kind without pieces."""
    rng = np.random.default_rng([seed, 7])
    return {
        "excerpts": _draws(held_out, excerpts, pieces, rng),
        "openings": _draws(held_out, openings, pieces, rng),
    }
