"""Real excerpts as long as the generated pieces they are compared with.

A piece that the model ended early (EOS) has fewer notes than were asked for, and
metrics such as the pitch range or the number of pitches grow with a piece's length.
So each generated length is compared with the real excerpts cut to that many notes:
the real set holds every excerpt once per distinct generated length, weighted by how
many pieces have that length. When every piece has the full length, this is the real
excerpts themselves, unweighted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from tunesmith.evaluation.metrics import MetricSet, compute_metrics


def real_at_lengths(segments: Sequence[np.ndarray], lengths: Sequence[int]) -> MetricSet:
    """Metrics of ``segments`` (real excerpts, note grids from their first bar) cut to each of
    ``lengths`` (the generated pieces' note counts, at most the excerpts' own), weighted by
    each length's share of the pieces; the excerpts are the independent pieces."""
    if not segments:
        raise ValueError("no real excerpt to compare with")
    full = min(len(s) for s in segments)
    counts = Counter(min(max(int(n), 1), full) for n in lengths) or Counter({full: 1})
    if len(counts) == 1 and full in counts:
        return compute_metrics(segments)
    parts = [(compute_metrics([s[:n] for s in segments]), c) for n, c in counts.items()]
    total = sum(counts.values())
    weights = np.concatenate(
        [np.full(len(segments), c / (total * len(segments))) for _, c in parts]
    )
    scalars = {k: np.concatenate([m.scalars[k] for m, _ in parts]) for k in parts[0][0].scalars}
    histograms = {
        k: np.concatenate([m.histograms[k] for m, _ in parts]) for k in parts[0][0].histograms
    }
    return MetricSet(scalars, histograms, weights, independent=len(segments))
