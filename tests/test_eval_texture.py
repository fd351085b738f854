"""Structure and texture metrics on hand-made grids (repeated bars, bass, long notes), and the
quality bar read from per-setting summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunesmith.evaluation import metrics as M
from tunesmith.evaluation import summary as S
from tunesmith.evaluation import texture as T


def rows(*notes: tuple[int, int, int]) -> np.ndarray:
    return np.array(notes, dtype=np.int64).reshape(-1, 3)


MOTIF = [(0, 72, 4), (0, 43, 16), (4, 74, 4), (8, 76, 8)]  # one bar: melody over a held bass


def bars(*contents: list[tuple[int, int, int]]) -> np.ndarray:
    """Bar i holds ``contents[i]`` (positions within the bar); an empty list is a silent bar."""
    return rows(*[(16 * i + s, p, d) for i, c in enumerate(contents) for s, p, d in c])


def test_a_piece_whose_bars_repeat() -> None:
    other = [(0, 71, 16)]
    # Bars: A A B A; the second and fourth equal an earlier bar.
    assert T.repeated_bar_rate(bars(MOTIF, MOTIF, other, MOTIF)) == pytest.approx(2 / 4)
    assert T.repeated_bar_rate(bars(MOTIF, MOTIF, MOTIF, MOTIF)) == pytest.approx(3 / 4)
    assert T.repeated_bar_rate(bars(MOTIF)) == 0.0


def test_empty_bars_do_not_count_and_order_within_a_bar_does_not_matter() -> None:
    # A B (silent) A: 3 non-empty bars, one repeat; the repeat lists its notes in another order.
    grid = bars(MOTIF, [(0, 71, 16)], [], MOTIF[::-1])
    assert T.repeated_bar_rate(grid) == pytest.approx(1 / 3)


def test_a_changed_position_pitch_or_duration_is_not_a_repeat() -> None:
    for changed in ([(1, 72, 4)], [(0, 73, 4)], [(0, 72, 3)]):
        grid = bars(MOTIF, changed + MOTIF[1:])
        assert T.repeated_bar_rate(grid) == 0.0, changed
    # The same notes moved by a beat, or an extra note, are not the same bar either.
    assert T.repeated_bar_rate(bars(MOTIF, [(s + 4, p, d) for s, p, d in MOTIF])) == 0.0
    assert T.repeated_bar_rate(bars(MOTIF, MOTIF + [(12, 60, 4)])) == 0.0


def test_bar_length_is_a_parameter() -> None:
    # Half-bar motif repeated: bars of 8 steps repeat, bars of 16 do not (only one bar).
    grid = rows((0, 60, 4), (4, 62, 4), (8, 60, 4), (12, 62, 4))
    assert T.repeated_bar_rate(grid, bar_steps=8) == 0.5
    assert T.repeated_bar_rate(grid) == 0.0
    with pytest.raises(ValueError):
        T.repeated_bar_rate(grid, bar_steps=0)


def test_bass_and_long_notes() -> None:
    grid = rows((0, 47, 8), (0, 48, 7), (4, 30, 1), (8, 72, 32))
    assert T.bass_share(grid) == pytest.approx(2 / 4)  # 47 and 30; 48 is not below 48
    assert T.long_note_share(grid) == pytest.approx(2 / 4)  # 8 and 32 steps; 7 is short


def test_no_notes_is_nan() -> None:
    for f in (T.repeated_bar_rate, T.bass_share, T.long_note_share):
        assert math.isnan(f(rows())), f.__name__


def test_they_are_compared_like_every_scalar_metric() -> None:
    repeating = bars(MOTIF, MOTIF, MOTIF, MOTIF)
    m = M.piece_metrics(repeating)
    assert m["repeated_bar_rate"] == 0.75
    assert m["bass_share"] == 0.25 and m["long_note_share"] == 0.5
    real = M.compute_metrics([repeating, bars(MOTIF, MOTIF)])
    never = M.compute_metrics([bars(MOTIF, [(0, 40, 2)]), bars([(0, 80, 1)], MOTIF)])
    comp = M.compare_metrics(real, never)
    assert comp["repeated_bar_rate"]["real_mean"] == pytest.approx((0.75 + 0.5) / 2)
    assert comp["repeated_bar_rate"]["generated_mean"] == 0.0
    assert comp["repeated_bar_rate"]["overlap"] < 0.5
    assert M.compare_metrics(real, real)["bass_share"]["overlap"] == pytest.approx(1.0, abs=1e-6)


def _setting(search: str, start: str, **values: object) -> dict[str, object]:
    base = {"search": search, "start": start, "repeated_bar_rate": 0.2, "bass_share": 0.15}
    base |= {"mean_overlap": 0.85, "lowest_overlap": 0.6, "lowest_overlap_metric": "polyphony"}
    base |= {"min_pitch_classes": 8.0, "min_pitch_range": 24.0}
    return base | values


def test_quality_checks_read_the_bar_directly() -> None:
    report = {
        "loss": {"test": {"loss": 1.38}},
        "settings_summary": {
            "top_k/nothing": _setting("top_k", "nothing"),
            "top_k/test_opening": _setting("top_k", "test_opening", bass_share=0.07),
            "top_k/train_opening": _setting("top_k", "train_opening", bass_share=0.0),
            "beam/nothing": _setting("beam", "nothing", min_pitch_range=9.0),
            "top_p/nothing": _setting("top_p", "nothing", repeated_bar_rate=0.0),
        },
        "memorisation": {"max_run": 17},
    }
    checks = {c["check"]: c["passed"] for c in S.quality_checks(report, "top_k", 4)}
    assert checks == {
        "test loss (nats/token)": True,
        "top_k/nothing: mean repeated-bar rate": True,
        "top_k/nothing: mean bass share": True,
        "top_k/nothing: mean KDE overlap": True,
        "top_k/nothing: lowest KDE overlap (polyphony)": True,
        "top_k/test_opening: mean repeated-bar rate": True,
        "top_k/test_opening: mean bass share": False,
        "top_k/test_opening: mean KDE overlap": True,
        "top_k/test_opening: lowest KDE overlap (polyphony)": True,
        "beam/nothing (width 4): fewest pitch classes in a piece": True,
        "beam/nothing (width 4): smallest pitch range in a piece": False,
        "longest run copied from a training file, any piece (notes)": False,
    }


def test_overlap_summary_skips_undefined_metrics() -> None:
    comparison = {name: {"overlap": 0.9} for name in M.SCALAR_METRICS}
    comparison["groove_consistency"]["overlap"] = math.nan  # pieces of one bar
    comparison["bass_share"]["overlap"] = 0.3
    s = S.overlap_summary(comparison)
    n = len(M.SCALAR_METRICS) - 1
    assert s["mean_overlap"] == pytest.approx((0.9 * (n - 1) + 0.3) / n)
    assert s["lowest_overlap"] == 0.3 and s["lowest_overlap_metric"] == "bass_share"
