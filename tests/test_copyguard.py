"""The copy guard: copies are forbidden at exactly N + 1 notes, in any transposition; nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.errors import BadParameterError
from tunesmith.evaluation.memorisation import MemorisationIndex
from tunesmith.generation.copyguard import CopyGuard, blocked_pitches, forbidden_durations


def random_piece(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(step, pitch, dur)`` rows in grid order (step up, pitch down), one note per step."""
    steps = np.arange(n) * 2
    return np.stack([steps, rng.integers(40, 90, n), rng.integers(1, 9, n)], axis=1)


@pytest.fixture(scope="module")
def files() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [random_piece(rng, 60) for _ in range(4)]


@pytest.fixture(scope="module")
def index(files: list[np.ndarray]) -> MemorisationIndex:
    return MemorisationIndex.build(files, [f"f{i}.mid" for i in range(len(files))])


def run_ending_at_last(notes: np.ndarray, files: list[np.ndarray]) -> int:
    """Brute force: the longest copied run that ends at the last of ``notes``."""
    best = 0
    for f in files:
        for j in range(len(f)):
            length = 0
            while (
                length < len(notes)
                and j - length >= 0
                and notes[-1 - length, 2] == f[j - length, 2]
                and (
                    length == 0
                    or notes[-length, 1] - notes[-1 - length, 1]
                    == f[j - length + 1, 1] - f[j - length, 1]
                )
            ):
                length += 1
            best = max(best, length)
    return best


@pytest.mark.parametrize("n", [1, 3, 6])
@pytest.mark.parametrize("shift", [0, 5, -12])
def test_a_copy_is_forbidden_at_exactly_n_plus_one_notes(
    files: list[np.ndarray], index: MemorisationIndex, n: int, shift: int
) -> None:
    guard = CopyGuard(index, n)
    source = files[2][10:40] + [0, shift, 0]
    for k in range(len(source) - 1):
        so_far, nxt = source[: k + 1], source[k + 1]
        forbidden = guard.forbidden_next(so_far[:, 1].tolist(), so_far[:, 2].tolist())
        # The next note would end a run of k + 2 notes: forbidden once that exceeds n.
        assert ((int(nxt[1]), int(nxt[2])) in forbidden) == (k + 2 > n)


def test_a_run_shorter_than_the_window_forbids_nothing(index: MemorisationIndex) -> None:
    guard = CopyGuard(index, 6)
    assert guard.forbidden_next([60, 62], [2, 2]) == set()
    assert guard.forbidden_next([], []) == set()


def test_forbidden_sets_hold_exactly_the_copies(
    files: list[np.ndarray], index: MemorisationIndex
) -> None:
    """On pieces that mix copied stretches and random notes, the guard agrees with brute force."""
    rng = np.random.default_rng(3)
    n = 4
    guard = CopyGuard(index, n)
    notes = np.concatenate(
        [random_piece(rng, 5), files[1][20:28] + [0, 3, 0], random_piece(rng, 5), files[3][:9]]
    )
    forbidden_seen = 0
    for k in range(1, len(notes)):
        forbidden = guard.forbidden_next(notes[:k, 1].tolist(), notes[:k, 2].tolist())
        for pitch, dur in forbidden:  # every forbidden note really copies n + 1 notes
            trial = np.concatenate([notes[:k], [[0, pitch, dur]]])
            assert run_ending_at_last(trial, files) > n
        candidates = [(int(notes[k, 1]), int(notes[k, 2]))] + [
            (int(p), int(d))
            for p, d in zip(rng.integers(40, 90, 20), rng.integers(1, 9, 20), strict=True)
        ]
        for pitch, dur in candidates:  # and every note that does is forbidden
            trial = np.concatenate([notes[:k], [[0, pitch, dur]]])
            assert ((pitch, dur) in forbidden) == (run_ending_at_last(trial, files) > n)
        forbidden_seen += len(forbidden)
    assert forbidden_seen >= 8  # the copied stretches did trigger the guard


def test_a_run_across_two_files_is_no_copy() -> None:
    a = np.array([(0, 60, 2), (2, 62, 3), (4, 64, 4)])
    b = np.array([(0, 65, 5), (2, 67, 6)])
    guard = CopyGuard(MemorisationIndex.build([a, b]), 2)
    assert guard.forbidden_next([50, 52], [2, 3]) == {(54, 4)}
    assert guard.forbidden_next([52, 54], [3, 4]) == set()  # a ends there; b is another file
    assert guard.forbidden_next([40, 42, 45], [6, 4, 5]) == set()  # b has no third note
    assert (
        CopyGuard(MemorisationIndex.build([a, b]), 3).forbidden_next([1, 3, 5], [2, 3, 4]) == set()
    )


def test_onsets_do_not_matter_and_pitches_stay_on_the_keyboard() -> None:
    piece = np.array([(0, 60, 4), (0, 55, 4), (4, 48, 4), (9, 40, 1)])
    guard = CopyGuard(MemorisationIndex.build([piece]), 3)
    assert guard.forbidden_next([30, 25, 18], [4, 4, 4]) == {(10, 1)}
    assert guard.forbidden_next([10, 5, 2], [4, 4, 4]) == set()  # 3 notes but another shape
    assert guard.would_copy([30, 25, 18], [4, 4, 4], 10, 1)
    assert not guard.would_copy([30, 25, 18], [4, 4, 4], 10, 2)
    low = CopyGuard(MemorisationIndex.build([piece]), 3)
    assert low.forbidden_next([25, 20, 13], [4, 4, 4]) == {(5, 1)}
    assert low.forbidden_next([15, 10, 3], [4, 4, 4]) == set()  # would be pitch -5


def test_mask_helpers() -> None:
    forbidden = {(60, 2), (60, 4), (62, 1), (64, 1), (64, 2)}
    assert forbidden_durations(forbidden, 60) == [2, 4]
    assert forbidden_durations(forbidden, 61) == []
    assert blocked_pitches(forbidden, [1, 2]) == [64]
    assert blocked_pitches(forbidden, [2, 4]) == [60]
    assert blocked_pitches(set(), [1, 2]) == []


@pytest.mark.parametrize("n", [0, -3])
def test_a_guard_needs_a_positive_run(index: MemorisationIndex, n: int) -> None:
    with pytest.raises(BadParameterError, match="^--max-copy: "):
        CopyGuard(index, n)


def test_window_count(index: MemorisationIndex) -> None:
    assert CopyGuard(index, 5).n_windows == 4 * (60 - 5)
    assert CopyGuard(index, 60).n_windows == 0
    assert CopyGuard(index, 100).forbidden_next([60] * 100, [1] * 100) == set()
