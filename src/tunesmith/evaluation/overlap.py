"""How much two samples of a metric overlap: 1 for the same distribution, 0 for disjoint ones.

Numbers (one value per piece) are compared by the overlapping area of their
Gaussian kernel density estimates, as Yang & Lerch do; histograms (one per
piece) by the shared mass of the two sets' mean histograms. A sample may weigh
its values (real excerpts cut to several generated lengths,
:mod:`~tunesmith.evaluation.equal_length`); unweighted, every value counts once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _std(x: np.ndarray, w: np.ndarray, n: int) -> float:
    """Weighted standard deviation with Bessel's correction for ``n`` independent values
    (for equal weights and ``n = len(x)``, numpy's ``std(ddof=1)``)."""
    if n < 2:
        return 0.0
    mean = float(w @ x)
    return math.sqrt(float(w @ (x - mean) ** 2) * n / (n - 1))


def _kde(x: np.ndarray, w: np.ndarray, bw: float, at: np.ndarray) -> np.ndarray:
    out = np.empty(len(at))
    for i in range(0, len(at), 4096):  # blocks keep the (points, samples) matrix small
        z = (at[i : i + 4096, None] - x[None, :]) / bw
        out[i : i + 4096] = np.exp(-0.5 * z * z) @ w
    return out / (bw * math.sqrt(2 * math.pi))


def _sample(
    values: Sequence[float] | np.ndarray, weights: np.ndarray | None, n: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Values without NaNs, their weights summing to 1, and the number of independent values
    (``n``, default the values left; capped by them)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    keep = ~np.isnan(x)
    x, w = x[keep], w[keep]
    total = w.sum()
    return x, (w / total if total > 0 else w), min(len(x), n or len(x))


def overlapping_area(
    a_values: Sequence[float] | np.ndarray,
    b_values: Sequence[float] | np.ndarray,
    a_weights: np.ndarray | None = None,
    a_independent: int | None = None,
) -> float:
    """Overlapping area (0..1) of two samples' Gaussian kernel density estimates.

    As in Yang & Lerch: each sample is smoothed by a Gaussian KDE with Scott's
    bandwidth, and the area under the pointwise minimum of the two densities is
    integrated numerically (1 = identical distributions, 0 = disjoint). NaNs are
    dropped; NaN if either sample is then empty. A sample without spread takes
    the other's bandwidth; two constant samples overlap fully (1) if they are
    the same constant, else not at all (0). ``a_weights``: the first sample's weights
    (default equal); ``a_independent``: how many of its values are independent, the n
    of Scott's rule (default all).
    """
    a, wa, na = _sample(a_values, a_weights, a_independent)
    b, wb, nb = _sample(b_values, None, None)
    if na == 0 or nb == 0:
        return math.nan
    # Scott's rule, as scipy.stats.gaussian_kde (and Yang & Lerch's mgeval) use it.
    # A sample without spread (one value, or all equal) borrows the other's, since
    # a zero-width kernel has no density; two such samples are point masses.
    std_a, std_b = _std(a, wa, na), _std(b, wb, nb)
    if std_a == 0 and std_b == 0:
        return 1.0 if a.min() == a.max() == b.min() == b.max() else 0.0
    bw_a = (std_a or std_b) * na ** (-1 / 5)
    bw_b = (std_b or std_a) * nb ** (-1 / 5)
    pooled = np.concatenate([a, b])
    pad = 5 * max(bw_a, bw_b)
    low, high = pooled.min() - pad, pooled.max() + pad
    # At least 8 points per narrowest bandwidth, so a narrow peak is not stepped over.
    n_points = int(np.clip((high - low) / (min(bw_a, bw_b) / 8), 2048, 1 << 17))
    at = np.linspace(low, high, n_points)
    inter = np.minimum(_kde(a, wa, bw_a, at), _kde(b, wb, bw_b, at))
    area = float(((inter[1:] + inter[:-1]) * 0.5 * np.diff(at)).sum())  # trapezoid rule
    return min(1.0, area)


def mean_histogram(rows: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | None:
    """The (weighted) mean of a set's histogram rows, normalised; pieces without notes (rows of
    zeros) are left out. None when no row (or no weight) is left."""
    rows = np.asarray(rows, dtype=np.float64)
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = rows.sum(axis=1) > 0 if len(rows) else np.zeros(0, dtype=bool)
    if w[keep].sum() <= 0:
        return None
    mean = w[keep] @ rows[keep]
    return mean / mean.sum()


def histogram_overlap(
    a_rows: np.ndarray, b_rows: np.ndarray, a_weights: np.ndarray | None = None
) -> float:
    """Overlap (0..1) of two sets' mean histograms: the sum of the bin-wise minimum.

    The discrete counterpart of :func:`overlapping_area` for histogram metrics:
    each set's rows are averaged into one distribution (:func:`mean_histogram`;
    ``a_weights``: the first set's row weights) and the shared mass is returned.
    """
    a, b = mean_histogram(a_rows, a_weights), mean_histogram(b_rows)
    if a is None or b is None:
        return math.nan
    return float(np.minimum(a, b).sum())
