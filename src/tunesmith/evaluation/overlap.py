"""How much two samples of a metric overlap: 1 for the same distribution, 0 for disjoint ones.

Numbers (one value per piece) are compared by the overlapping area of their
Gaussian kernel density estimates, as Yang & Lerch do; histograms (one per
piece) by the shared mass of the two sets' mean histograms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _std(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def _kde(x: np.ndarray, bw: float, at: np.ndarray) -> np.ndarray:
    out = np.empty(len(at))
    for i in range(0, len(at), 4096):  # blocks keep the (points, samples) matrix small
        z = (at[i : i + 4096, None] - x[None, :]) / bw
        out[i : i + 4096] = np.exp(-0.5 * z * z).sum(axis=1)
    return out / (len(x) * bw * math.sqrt(2 * math.pi))


def overlapping_area(
    a_values: Sequence[float] | np.ndarray, b_values: Sequence[float] | np.ndarray
) -> float:
    """Overlapping area (0..1) of two samples' Gaussian kernel density estimates.

    As in Yang & Lerch: each sample is smoothed by a Gaussian KDE with Scott's
    bandwidth, and the area under the pointwise minimum of the two densities is
    integrated numerically (1 = identical distributions, 0 = disjoint). NaNs are
    dropped; NaN if either sample is then empty. A sample without spread takes
    the other's bandwidth; two constant samples overlap fully (1) if they are
    the same constant, else not at all (0).
    """
    a = np.asarray(a_values, dtype=np.float64).ravel()
    b = np.asarray(b_values, dtype=np.float64).ravel()
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return math.nan
    # Scott's rule, as scipy.stats.gaussian_kde (and Yang & Lerch's mgeval) use it.
    # A sample without spread (one value, or all equal) borrows the other's, since
    # a zero-width kernel has no density; two such samples are point masses.
    std_a, std_b = _std(a), _std(b)
    if std_a == 0 and std_b == 0:
        return 1.0 if a.min() == a.max() == b.min() == b.max() else 0.0
    bw_a = (std_a or std_b) * len(a) ** (-1 / 5)
    bw_b = (std_b or std_a) * len(b) ** (-1 / 5)
    pooled = np.concatenate([a, b])
    pad = 5 * max(bw_a, bw_b)
    low, high = pooled.min() - pad, pooled.max() + pad
    # At least 8 points per narrowest bandwidth, so a narrow peak is not stepped over.
    n_points = int(np.clip((high - low) / (min(bw_a, bw_b) / 8), 2048, 1 << 17))
    at = np.linspace(low, high, n_points)
    inter = np.minimum(_kde(a, bw_a, at), _kde(b, bw_b, at))
    area = float(((inter[1:] + inter[:-1]) * 0.5 * np.diff(at)).sum())  # trapezoid rule
    return min(1.0, area)


def histogram_overlap(a_rows: np.ndarray, b_rows: np.ndarray) -> float:
    """Overlap (0..1) of two sets' mean histograms: the sum of the bin-wise minimum.

    The discrete counterpart of :func:`overlapping_area` for histogram metrics:
    each set's rows are averaged into one distribution (pieces without notes,
    whose rows are all zero, are left out) and the shared mass is returned.
    """
    means = []
    for rows in (np.asarray(a_rows, dtype=np.float64), np.asarray(b_rows, dtype=np.float64)):
        rows = rows[rows.sum(axis=1) > 0]
        if len(rows) == 0:
            return math.nan
        mean = rows.mean(axis=0)
        means.append(mean / mean.sum())
    return float(np.minimum(means[0], means[1]).sum())
