"""Deterministic train/val/test split by a hash of each file's relative path.

A file's split depends only on its own path (not on which other files exist), so
adding files to a corpus never moves old ones between splits. The only exception
is the small-corpus fix-up: with 3 or more files, val and test each get at least
one file (and train keeps at least one), moving the files whose hashes lie
closest to the empty split's interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from tunesmith.errors import BadParameterError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.9, 0.05, 0.05)


def path_hash(rel_path: str) -> float:
    """A number in [0, 1) from the sha1 of the POSIX relative path."""
    digest = hashlib.sha1(rel_path.replace("\\", "/").encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_fractions(fractions: Iterable[float]) -> tuple[float, float, float]:
    """Validate ``(train, val, test)`` fractions: three non-negative numbers summing to 1."""
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise BadParameterError(
            f"split fractions {fr} must be three non-negative numbers (train, val, test) summing to 1"
        )
    return fr  # type: ignore[return-value]


def split_of(rel_path: str, fractions: Iterable[float] = DEFAULT_FRACTIONS) -> str:
    """The split of one path by its hash alone (no small-corpus fix-up)."""
    train, val, _ = check_fractions(fractions)
    u = path_hash(rel_path)
    if u < train:
        return "train"
    return "val" if u < train + val else "test"


def assign_splits(
    rel_paths: Iterable[str], fractions: Iterable[float] = DEFAULT_FRACTIONS
) -> dict[str, str]:
    """Map every relative path to ``train``, ``val`` or ``test``.

    With >= 3 files every split gets at least one file; with 1-2 files train gets
    at least one. The result does not depend on the order of ``rel_paths``.
    """
    fr = check_fractions(fractions)
    paths = sorted(set(rel_paths))
    u = {p: path_hash(p) for p in paths}
    out = {p: split_of(p, fr) for p in paths}
    members = {
        s: sorted((p for p in paths if out[p] == s), key=lambda p: (u[p], p)) for s in SPLITS
    }
    must_fill = SPLITS if len(paths) >= 3 else ("train",) if paths else ()
    for target in must_fill:
        if members[target]:
            continue
        # The donor is the biggest split (ties: train, val, test): with >= 3 files it
        # holds at least 2, so it never empties. Moving into a later split takes the
        # donor's highest hash (nearest that split's interval), into an earlier one
        # its lowest.
        donor = max(SPLITS, key=lambda s: (len(members[s]), -SPLITS.index(s)))
        later = SPLITS.index(target) > SPLITS.index(donor)
        moved = members[donor].pop(-1 if later else 0)
        members[target].append(moved)
        out[moved] = target
    return out
