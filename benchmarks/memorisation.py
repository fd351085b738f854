"""Memorisation index vs a quadratic scan on POP909 (909 files).

Builds the index of all of POP909, queries ``--queries`` pieces of 200 notes
(openings of Final Fantasy files, transposed excerpts of POP909 files, random
notes: a third each), and runs the naive note-by-note scan on the first
``--naive`` of them to check the answers agree and to compare speed::

    python -m benchmarks.memorisation [--queries 100] [--naive 6]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tunesmith.evaluation.memorisation import MemorisationIndex, longest_copy_naive
from tunesmith.tokenization.midi_io import grid_notes, load_midi

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
PIECE_NOTES = 200


def make_queries(train: list[np.ndarray], n: int, seed: int = 0) -> list[np.ndarray]:
    """A third real music the index has not seen, a third copies, a third random notes."""
    rng = np.random.default_rng(seed)
    ff = sorted((DATASETS / "final-fantasy-piano").glob("*.mid"))
    queries = [grid_notes(load_midi(f))[:PIECE_NOTES] for f in ff[: n // 3]]
    while len(queries) < 2 * n // 3:
        g = train[int(rng.integers(len(train)))]
        start = int(rng.integers(0, max(len(g) - PIECE_NOTES, 1)))
        piece = g[start : start + PIECE_NOTES].astype(np.int64)
        piece[:, 1] += int(rng.integers(-3, 4))  # any transposition is still a copy
        queries.append(np.clip(piece, 0, None))
    while len(queries) < n:
        steps = np.sort(rng.integers(0, 4 * PIECE_NOTES, PIECE_NOTES))
        pitches = rng.integers(36, 96, PIECE_NOTES)
        durs = rng.integers(1, 9, PIECE_NOTES)
        queries.append(np.stack([steps, pitches, durs], axis=1))
    return queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--naive", type=int, default=6, help="queries also answered by the quadratic scan"
    )
    args = parser.parse_args()
    folder = DATASETS / "pop909"
    if not folder.is_dir():
        print(f"{folder} not found", file=sys.stderr)
        return 2
    files = sorted(folder.glob("*.mid"))

    t0 = time.perf_counter()
    train = [grid_notes(load_midi(f)) for f in files]
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = MemorisationIndex.build(train, [f.name for f in files])
    t_build = time.perf_counter() - t0
    queries = make_queries(train, args.queries)

    t0 = time.perf_counter()
    answers = [index.longest_copy(q) for q in queries]
    t_query = time.perf_counter() - t0

    subset = queries[:: max(len(queries) // max(args.naive, 1), 1)][: args.naive]
    subset_answers = answers[:: max(len(queries) // max(args.naive, 1), 1)][: args.naive]
    names = [f.name for f in files]
    t0 = time.perf_counter()
    naive = [longest_copy_naive(q, train, names) for q in subset]
    t_naive = time.perf_counter() - t0
    agree = all(
        a.length_notes == b.length_notes for a, b in zip(subset_answers, naive, strict=True)
    )

    fast_qps = len(queries) / t_query
    naive_qps = len(subset) / t_naive if subset else float("nan")
    print(f"POP909: {len(files)} files, {index.n_notes} notes; read + grid {t_read:.2f} s")
    print(f"index build: {t_build:.2f} s")
    print(f"{'method':<16}{'queries':>8}{'seconds':>10}{'queries/s':>12}")
    print(f"{'index':<16}{len(queries):>8}{t_query:>10.3f}{fast_qps:>12.1f}")
    print(f"{'quadratic scan':<16}{len(subset):>8}{t_naive:>10.3f}{naive_qps:>12.3f}")
    print(f"speed-up: {fast_qps / naive_qps:,.0f}x; answers agree on the scanned subset: {agree}")
    lengths = [a.length_notes for a in answers]
    print(f"longest runs (notes): {lengths}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
