"""Per-setting summaries of an evaluation and the quality bar they are checked against.

A setting is a search method and a kind of start (see :mod:`sampling`). For each
one the report gives the numbers that decide whether a model makes music a
pianist would keep: structure (repeated bars), texture (bass, long notes), how
close every statistic is to real music (KDE overlap), whether a search collapses
onto a few pitches, and how much it copies. :func:`quality_checks` turns them
into pass/fail lines against :data:`LIMITS` (the bundled model's bar).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunesmith.evaluation.equal_length import real_at_lengths
from tunesmith.evaluation.metrics import SCALAR_METRICS, MetricSet, compare_metrics, compute_metrics

# The quality bar of the bundled model (issue "Bundled model v2", "Done when").
LIMITS = {
    "test_loss_max": 1.40,
    "repeated_bar_rate_min": 0.10,  # mean, default search, from nothing and from test openings
    "bass_share_min": 0.10,  # mean, same settings
    "mean_overlap_min": 0.80,  # mean KDE overlap over the scalar metrics, same settings
    "lowest_overlap_min": 0.5,  # every scalar metric's KDE overlap, same settings
    "pitch_classes_min": 7,  # every greedy and beam piece
    "pitch_range_min": 19,  # every greedy and beam piece, semitones
    "copy_max": 16,  # consecutive notes shared with a training file, every piece
}
TEXTURE = ("repeated_bar_rate", "bass_share", "long_note_share")


def _nanmin(values: np.ndarray) -> float | None:
    v = values[~np.isnan(values)]
    return float(v.min()) if len(v) else None


def overlap_summary(comparison: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Mean and lowest KDE overlap over the scalar metrics (NaN ones left out)."""
    found = {n: comparison[n]["overlap"] for n in SCALAR_METRICS}
    found = {n: v for n, v in found.items() if v is not None and not math.isnan(v)}
    if not found:
        return {"mean_overlap": None, "lowest_overlap": None, "lowest_overlap_metric": None}
    lowest = min(found, key=found.__getitem__)
    return {
        "mean_overlap": float(np.mean(list(found.values()))),
        "lowest_overlap": found[lowest],
        "lowest_overlap_metric": lowest,
    }


def set_summary(values: MetricSet) -> dict[str, Any]:
    """Means of the texture metrics and the lowest pitch-class count and pitch range."""
    out: dict[str, Any] = {"pieces": len(values)}
    for name in TEXTURE:
        v = values.scalars[name][~np.isnan(values.scalars[name])]
        out[name] = float(v.mean()) if len(v) else None
    out["min_pitch_classes"] = _nanmin(values.scalars["n_pitch_classes"])
    out["min_pitch_range"] = _nanmin(values.scalars["pitch_range"])
    return out


def by_setting(
    segments: list[np.ndarray],
    pieces: list[dict[str, Any]],
    grids: list[np.ndarray],
    openings: list[np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each setting's summary, its KDE overlaps with the real excerpts (``segments``, cut to
    its pieces' lengths) and its longest copy; for a setting from nothing, also its overlap
    with real ``openings`` (``vs_openings``: a piece from nothing is an opening, which leaves
    fewer beats silent and holds more long notes than an excerpt from a piece's middle)."""
    out: dict[str, dict[str, Any]] = {}
    for setting in dict.fromkeys(p["setting"] for p in pieces):  # in order of generation
        rows = [i for i, p in enumerate(pieces) if p["setting"] == setting]
        values = compute_metrics([grids[i] for i in rows])
        lengths = [len(grids[i]) for i in rows]
        comparison = compare_metrics(real_at_lengths(segments, lengths), values)
        out[setting] = {
            "search": pieces[rows[0]]["search"],
            "start": pieces[rows[0]]["start"],
            **set_summary(values),
            **overlap_summary(comparison),
            "longest_copy": max(pieces[i]["memorisation"]["length_notes"] for i in rows),
            "overlaps": {name: c["overlap"] for name, c in comparison.items()},
        }
        if openings and out[setting]["start"] == "nothing":
            vs_openings = compare_metrics(real_at_lengths(openings, lengths), values)
            out[setting]["vs_openings"] = {
                "openings": len(openings),
                **overlap_summary(vs_openings),
            }
    return out


def _check(what: str, value: float | None, limit: float, at_least: bool) -> dict[str, Any]:
    passed = value is not None and (value >= limit if at_least else value <= limit)
    return {"check": what, "value": value, "limit": limit, "at_least": at_least, "passed": passed}


def _music_checks(setting: str, s: dict[str, Any]) -> list[dict[str, Any]]:
    """Structure, texture and closeness to real music of the default search's pieces."""
    lowest = f"{setting}: lowest KDE overlap ({s['lowest_overlap_metric']})"
    return [
        _check(f"{setting}: mean repeated-bar rate", s["repeated_bar_rate"],
               LIMITS["repeated_bar_rate_min"], True),
        _check(f"{setting}: mean bass share", s["bass_share"], LIMITS["bass_share_min"], True),
        _check(f"{setting}: mean KDE overlap", s["mean_overlap"], LIMITS["mean_overlap_min"], True),
        _check(lowest, s["lowest_overlap"], LIMITS["lowest_overlap_min"], True),
    ]  # fmt: skip


def _collapse_checks(label: str, s: dict[str, Any]) -> list[dict[str, Any]]:
    """Deterministic searches must not loop on a few pitches: every piece's variety."""
    return [
        _check(f"{label}: fewest pitch classes in a piece", s["min_pitch_classes"],
               LIMITS["pitch_classes_min"], True),
        _check(f"{label}: smallest pitch range in a piece", s["min_pitch_range"],
               LIMITS["pitch_range_min"], True),
    ]  # fmt: skip


def quality_checks(
    report: dict[str, Any], default_search: str, beam_width: int
) -> list[dict[str, Any]]:
    """Pass/fail of every line of the quality bar that ``evaluate`` measures, from a report.

    The music and collapse checks apply to pieces from nothing and from test
    openings; pieces from training openings count for copying only.
    """
    checks = []
    if "test" in report["loss"]:
        value = report["loss"]["test"]["loss"]
        checks.append(_check("test loss (nats/token)", value, LIMITS["test_loss_max"], False))
    for setting, s in report["settings_summary"].items():
        if s["start"] == "train_opening":
            continue
        if s["search"] == default_search:
            checks += _music_checks(setting, s)
        if s["search"] in ("greedy", "beam"):
            width = f" (width {beam_width})" if s["search"] == "beam" else ""
            checks += _collapse_checks(f"{setting}{width}", s)
    longest = report["memorisation"]["max_run"]
    what = "longest run copied from a training file, any piece (notes)"
    checks.append(_check(what, longest, LIMITS["copy_max"], False))
    return checks
