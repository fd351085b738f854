"""The memorisation index: exact longest copied runs, in any transposition, fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunesmith.errors import TunesmithError
from tunesmith.evaluation import memorisation as mem
from tunesmith.evaluation.memorisation import CopyMatch, MemorisationIndex, longest_copy_naive
from tunesmith.tokenization.midi_io import grid_notes, load_midi, score_from_grid

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
FF = DATASETS / "final-fantasy-piano"
POP909 = DATASETS / "pop909"


def random_piece(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = np.sort(rng.integers(0, 2 * n, n))
    piece = np.stack([steps, rng.integers(40, 90, n), rng.integers(1, 9, n)], axis=1)
    order = np.lexsort((-piece[:, 1], piece[:, 0]))  # grid order: step up, pitch down
    piece = piece[order]
    # One note per (step, pitch), as grid_notes keeps it.
    keep = np.ones(len(piece), dtype=bool)
    keep[1:] = (piece[1:, 0] != piece[:-1, 0]) | (piece[1:, 1] != piece[:-1, 1])
    return piece[keep]


def corpus(seed: int, n_files: int = 12, n: int = 150) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [random_piece(rng, n) for _ in range(n_files)]


def plant(
    piece: np.ndarray, source: np.ndarray, at: int, start: int, length: int, shift: int
) -> np.ndarray:
    """``piece`` with notes ``at..at+length`` replaced by a transposed copy of ``source``'s."""
    out = piece.copy()
    out[at : at + length, 1:] = source[start : start + length, 1:] + [shift, 0]
    out[at : at + length, 0] = np.arange(length) * 3 + (out[at - 1, 0] + 5 if at else 0)
    tail = out[at + length :]
    tail[:, 0] += out[at + length - 1, 0] + 5 - (tail[0, 0] if len(tail) else 0)
    return out


def test_transposed_excerpt_is_found_whole() -> None:
    files = corpus(0)
    index = MemorisationIndex.build(files, [f"f{i}.mid" for i in range(len(files))])
    excerpt = files[7][40:90].copy()
    excerpt[:, 1] -= 5
    excerpt[:, 0] += 1000  # shifted in time too
    match = index.longest_copy(excerpt)
    assert match == CopyMatch(50, "f7.mid", 0, 40)
    assert match.describe() == "longest copied run: 50 notes, from f7.mid"


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 8, 9, 13, 40])
def test_planted_copies_of_every_length_match_the_naive_scan(length: int) -> None:
    files = corpus(length)
    rng = np.random.default_rng(100 + length)
    piece = plant(random_piece(rng, 120), files[3], at=30, start=60, length=length, shift=2)
    index = MemorisationIndex.build(files, [str(i) for i in range(len(files))])
    fast, slow = index.longest_copy(piece), longest_copy_naive(piece, files, index.names)
    assert fast.length_notes == slow.length_notes >= length
    # Wherever it was found, the run really is a transposed copy.
    f = files[int(fast.file)]
    g = piece[fast.start_in_generated : fast.start_in_generated + fast.length_notes]
    t = f[fast.start_in_file : fast.start_in_file + fast.length_notes]
    assert (g[:, 2] == t[:, 2]).all() and (np.diff(g[:, 1]) == np.diff(t[:, 1])).all()


def test_random_notes_share_only_a_short_run() -> None:
    files = corpus(1)
    index = MemorisationIndex.build(files)
    piece = random_piece(np.random.default_rng(99), 200)
    match = index.longest_copy(piece)
    assert 1 <= match.length_notes <= 5
    assert match.length_notes == longest_copy_naive(piece, files, index.names).length_notes
    assert match.file is not None and match.file.startswith("piece ")


def test_hash_collisions_cannot_invent_or_hide_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a zero multiplier a window's hash is its last note's token alone:
    # collisions everywhere, and the verification on the notes must still be exact.
    monkeypatch.setattr(mem, "_BASE", np.uint64(0))
    files = corpus(2)
    piece = plant(
        random_piece(np.random.default_rng(5), 100), files[4], at=20, start=10, length=21, shift=-3
    )
    index = MemorisationIndex.build(files)
    assert (
        index.longest_copy(piece).length_notes
        == longest_copy_naive(piece, files, index.names).length_notes
    )


def test_prompt_notes_are_left_out() -> None:
    files = corpus(3)
    index = MemorisationIndex.build(files, [f"f{i}" for i in range(len(files))])
    piece = np.concatenate(
        [files[2][:30], random_piece(np.random.default_rng(8), 40) + [1000, 0, 0]]
    )
    assert index.longest_copy(piece).length_notes >= 30
    skipped = index.longest_copy(piece, from_note=30)
    assert skipped.length_notes < 30 and skipped.start_in_generated >= 30


def test_empty_inputs() -> None:
    index = MemorisationIndex.build(corpus(4, n_files=2))
    assert index.longest_copy(np.zeros((0, 3))) == CopyMatch(0, None, 0, 0)
    assert CopyMatch(0, None, 0, 0).describe() == "longest copied run: 0 notes"
    assert (
        MemorisationIndex.build([])
        .longest_copy(random_piece(np.random.default_rng(0), 10))
        .length_notes
        == 0
    )
    tiny = MemorisationIndex.build([np.array([[0, 60, 4]])], ["one.mid"])
    assert (
        tiny.longest_copy(np.array([[0, 70, 4], [4, 71, 2]])).describe()
        == "longest copied run: 1 note, from one.mid"
    )


def test_save_load_round_trip(tmp_path: Path) -> None:
    files = corpus(5)
    index = MemorisationIndex.build(files, [f"ff{i}.mid" for i in range(len(files))])
    path = index.save(tmp_path / "index.npz")
    again = MemorisationIndex.load(path)
    assert again.names == index.names and again.n_notes == index.n_notes
    for i in range(3):
        piece = files[i][10:60] + [0, 3, 0]
        assert again.longest_copy(piece) == index.longest_copy(piece)
    (tmp_path / "bad.npz").write_bytes(b"not an index")
    with pytest.raises(TunesmithError, match="not a memorisation index"):
        MemorisationIndex.load(tmp_path / "bad.npz")


def test_build_from_paths_and_scores(tmp_path: Path) -> None:
    files = corpus(6, n_files=3)
    for i, g in enumerate(files):
        score_from_grid(g).dump_midi(str(tmp_path / f"s{i}.mid"))
    by_path = MemorisationIndex.build(sorted(tmp_path.glob("*.mid")))
    assert by_path.names == ["s0.mid", "s1.mid", "s2.mid"]
    match = by_path.longest_copy(score_from_grid(files[1][5:25]))
    assert (match.length_notes, match.file, match.start_in_file) == (20, "s1.mid", 5)
    with pytest.raises(ValueError, match="names"):
        MemorisationIndex.build(files, ["only one"])


@pytest.mark.skipif(not FF.is_dir(), reason=f"{FF} not found")
def test_final_fantasy_excerpt_names_its_file() -> None:
    paths = sorted(FF.glob("*.mid"))
    index = MemorisationIndex.build(paths)
    source = grid_notes(load_midi(paths[20])).astype(np.int64)
    excerpt = source[100:164] + [0, 2, 0]
    match = index.longest_copy(excerpt)
    assert match.length_notes == 64 and match.file == paths[20].name


@pytest.mark.skipif(not POP909.is_dir(), reason=f"{POP909} not found")
def test_pop909_indexes_whole() -> None:
    """Benchmark-ish (timing in benchmarks/memorisation.py): all 909 files, then queries."""
    paths = sorted(POP909.glob("*.mid"))
    grids = [grid_notes(load_midi(p)) for p in paths]
    index = MemorisationIndex.build(grids, [p.name for p in paths])
    assert index.n_notes == sum(len(g) for g in grids) > 1_000_000
    excerpt = grids[500][300:420].astype(np.int64) + [0, -4, 0]
    assert index.longest_copy(excerpt).length_notes == 120
    assert index.longest_copy(random_piece(np.random.default_rng(0), 200)).length_notes <= 6
