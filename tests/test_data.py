"""Data pipeline: split, prepare (folder -> cache), TokenCache, WindowDataset, the prepare CLI."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BAD_REASONS, make_corpus, melody, raw_midi, raw_track, write_midi
from tunesmith.data.dataset import TokenCache, WindowDataset, pitch_tables
from tunesmith.data.prepare import prepare
from tunesmith.data.split import assign_splits, check_fractions, split_of
from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.tokenization.base import TokenKind
from tunesmith.tokenization.midi_io import load_midi

# --- split ------------------------------------------------------------------------------


def test_split_is_deterministic_and_order_free() -> None:
    paths = [f"dir{i % 3}/song{i}.mid" for i in range(200)]
    a = assign_splits(paths)
    assert a == assign_splits(list(reversed(paths)))
    counts = Counter(a.values())
    assert counts["train"] > 150 and counts["val"] > 0 and counts["test"] > 0
    # Adding files never moves existing ones (no fix-up needed at this size).
    b = assign_splits(paths + [f"new{i}.mid" for i in range(50)])
    assert all(b[p] == a[p] for p in paths)
    assert all(a[p] == split_of(p) for p in paths)


@pytest.mark.parametrize("n", range(1, 40))
def test_split_minimum_one_val_and_test(n: int) -> None:
    counts = Counter(assign_splits([f"f{i}.mid" for i in range(n)]).values())
    assert counts["train"] >= 1
    if n >= 3:
        assert counts["val"] >= 1 and counts["test"] >= 1


def test_split_fractions_are_checked() -> None:
    with pytest.raises(BadParameterError):
        check_fractions((0.5, 0.5, 0.5))
    assert set(assign_splits([f"{i}" for i in range(50)], (1.0, 0.0, 0.0)).values()) == {
        "train",
        "val",
        "test",
    }


# --- a small folder with good and bad files ---------------------------------------------


def read_manifest(cache_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (cache_dir / "manifest.jsonl").read_text().splitlines()]


def test_prepare_small_folder(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "data")
    out = tmp_path / "cache"
    s = prepare(data, out, workers=1, progress=False)
    assert (s.n_files, s.n_ok, len(s.rejected)) == (13, 6, 7)
    assert s.line().startswith("13 files: 6 ok, 7 rejected: ")
    rows = {r["file"]: r for r in read_manifest(out)}
    assert set(rows) == {f"good/g{i}{'.MIDI' if i == 1 else '.mid'}" for i in range(6)} | set(
        BAD_REASONS
    )
    for name, reason in BAD_REASONS.items():
        assert rows[name]["status"] == "rejected" and rows[name]["reason"].startswith(reason), rows[
            name
        ]
        assert rows[name]["split"] is None and rows[name]["tokens"] == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tokenizer"] == "pairs" and meta["vocab_size"] == 296
    assert meta["counts"]["ok"] == 6 and meta["source"] == str(data.resolve())
    assert meta["fractions"] == {"train": 0.9, "val": 0.05, "test": 0.05}
    cache = TokenCache(out, "pairs")
    for split in ("train", "val", "test"):
        assert len(cache.files(split)) >= 1  # >= 3 usable files: every split has one
        for i, name in enumerate(cache.files(split)):
            assert rows[name]["split"] == split
            ids = cache.file_tokens(split, i)
            assert ids.dtype == np.uint16 and len(ids) == rows[name]["tokens"]
            assert ids.tolist() == cache.tokenizer.encode(load_midi(data / name))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_summary_line_names_the_file(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "data", n_good=2, bad=False)
    (data / "x.mid").write_bytes(raw_midi([raw_track([])]))
    s = prepare(data, tmp_path / "out", workers=1, progress=False)
    assert s.line() == "3 files: 2 ok, 1 rejected: no notes (x.mid)"


def test_prepare_parallel_matches_serial(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "data", n_good=40)
    prepare(data, tmp_path / "one", workers=1, progress=False)
    prepare(data, tmp_path / "two", workers=2, progress=False)
    for name in (
        "train.bin",
        "val.bin",
        "test.bin",
        "manifest.jsonl",
        "meta.json",
        "tokenizer.json",
    ):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), (
            name
        )
    for split in ("train", "val", "test"):
        one, two = TokenCache(tmp_path / "one"), TokenCache(tmp_path / "two")
        assert (one.spans(split) == two.spans(split)).all()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d, "no such folder"),
        (lambda d: write_midi(d / "one.mid", melody()), "needs a folder"),
        (lambda d: (d.mkdir(), (d / "a.txt").write_text("x"), d)[-1], "no .mid or .midi files"),
        (
            lambda d: (d.mkdir(), (d / "z.mid").write_bytes(b""), d)[-1],
            "none of the 1 MIDI files is usable (z.mid: empty file",
        ),
    ],
)
def test_prepare_bad_input_leaves_nothing(tmp_path: Path, setup, message: str) -> None:
    target = setup(tmp_path / "in")
    out = tmp_path / "deep" / "er" / "cache"
    with pytest.raises(TunesmithError, match=re.escape(message)) as info:
        prepare(target, out, workers=1, progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "deep").exists()


def test_prepare_out_dir_rules(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "data", n_good=3, bad=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "precious.txt").write_text("keep me")
    with pytest.raises(TunesmithError, match="not a tunesmith token cache"):
        prepare(data, busy, workers=1, progress=False)
    assert (busy / "precious.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    prepare(data, tmp_path / "empty", workers=1, progress=False)  # an empty folder is fine
    write_midi(data / "new.mid", melody(40, 70))
    s = prepare(data, tmp_path / "empty", workers=1, progress=False)  # a previous cache is replaced
    assert s.n_ok == 4 and TokenCache(tmp_path / "empty").meta["counts"]["ok"] == 4
    with pytest.raises(BadParameterError, match="--bpe-vocab"):
        prepare(data, tmp_path / "x", tokenizer="pairs", bpe_vocab_size=500, progress=False)
    with pytest.raises(BadParameterError, match="--workers"):
        prepare(data, tmp_path / "x", workers=0, progress=False)


def test_prepare_final_fantasy(ff_dir: Path, tmp_path: Path) -> None:
    s = prepare(ff_dir, tmp_path / "ff", workers=2, progress=False)
    assert (s.n_files, s.n_ok) == (92, 92)
    assert s.line() == "92 files: 92 ok, 0 rejected"
    assert sum(s.files_per_split.values()) == 92 and min(s.files_per_split.values()) >= 1
    cache = TokenCache(tmp_path / "ff", "pairs")
    assert sum(len(cache.tokens(sp)) for sp in ("train", "val", "test")) == sum(
        s.tokens_per_split.values()
    )


def test_prepare_remi_with_bpe(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "data", n_good=8, bad=False)
    s = prepare(
        data, tmp_path / "c", tokenizer="remi", bpe_vocab_size=300, workers=1, progress=False
    )
    cache = TokenCache(tmp_path / "c", "remi")
    assert s.vocab_size == cache.vocab_size == 304 and cache.tokenizer.is_trained
    name = cache.files("train")[0]
    assert cache.file_tokens("train", 0).tolist() == cache.tokenizer.encode(load_midi(data / name))
    with pytest.raises(BadParameterError, match="merged"):
        WindowDataset(cache, "train", 32, augment_transpose=3)


def test_token_cache_errors(tmp_path: Path) -> None:
    with pytest.raises(TunesmithError, match="no such token cache"):
        TokenCache(tmp_path / "missing")
    with pytest.raises(TunesmithError, match="not a tunesmith token cache"):
        TokenCache(tmp_path)
    prepare(make_corpus(tmp_path / "d", 3, bad=False), tmp_path / "c", workers=1, progress=False)
    with pytest.raises(TunesmithError, match="prepared with the 'pairs' tokenizer, not 'tsd'"):
        TokenCache(tmp_path / "c", "tsd")
    np.save(tmp_path / "c" / "train.idx.npy", np.array([[0, 10**9]]))
    with pytest.raises(TunesmithError, match="damaged"):
        TokenCache(tmp_path / "c")


# --- windows ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ff_cache(ff_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TokenCache:
    out = tmp_path_factory.mktemp("ffcache") / "cache"
    prepare(ff_dir, out, workers=2, progress=False)
    return TokenCache(out, "pairs")


def test_windows_overlap_eos_and_padding(ff_cache: TokenCache) -> None:
    seq_len = 64
    ds = WindowDataset(ff_cache, "val", seq_len)
    tok = ff_cache.tokenizer
    covered: dict[int, set[int]] = {}
    previous = None
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (seq_len,) and x.dtype == y.dtype == torch.int64
        assert (x[1:] == y[:-1]).all()
        f, start, stop = ds.window(i)
        file_ids = ff_cache.file_tokens("val", f).tolist() + [tok.eos_id]
        real = stop - start
        assert 0 <= start < stop <= len(file_ids) and real <= seq_len + 1
        ids = x.tolist() + [int(y[-1])]
        assert ids[:real] == file_ids[start:stop]  # one file only, EOS at the end
        assert all(t == tok.pad_id for t in ids[real:])  # padding: PAD inputs and PAD targets
        covered.setdefault(f, set()).update(range(start, stop))
        if previous is not None and previous[0] == f:
            assert start - previous[1] == ds.stride == seq_len // 2  # 50% overlap
        previous = (f, start)
    for f, positions in covered.items():
        assert positions == set(range(len(ff_cache.file_tokens("val", f)) + 1))
    # Files start with their own prefix (BOS PAD for seed).
    firsts = [i for i in range(len(ds)) if ds.window(i)[1] == 0]
    assert all(ds[i][0][:2].tolist() == tok.prefix for i in firsts)


def test_short_file_gives_one_padded_window(tmp_path: Path) -> None:
    prepare(make_corpus(tmp_path / "d", 3, bad=False), tmp_path / "c", workers=1, progress=False)
    ds = WindowDataset(tmp_path / "c", "test", 4096)
    assert len(ds) == 1
    x, y = ds[0]
    n = len(ds.cache.file_tokens("test", 0))
    assert int(x[n]) == ds.eos_id and int(y[n - 1]) == ds.eos_id
    assert (y[n:] == ds.pad_id).all() and (x[n + 1 :] == ds.pad_id).all()


def pitch_values(tok, ids: np.ndarray) -> np.ndarray:
    """The pitches of a window's pitch tokens, in order."""
    pitch_of_id = pitch_tables(tok)[0]
    return pitch_of_id[ids][tok.kinds[ids] == TokenKind.PITCH]


def test_transposition_in_range_and_deterministic(ff_cache: TokenCache) -> None:
    tok = ff_cache.tokenizer
    plain = WindowDataset(ff_cache, "train", 128)
    aug = WindowDataset(ff_cache, "train", 128, augment_transpose=6, seed=3)
    shifts = set()
    for i in range(0, len(aug), 7):
        a, b = plain.window_ids(i), aug.window_ids(i)
        is_pitch = tok.kinds[a] == TokenKind.PITCH
        assert (a[~is_pitch] == b[~is_pitch]).all()  # only pitch tokens move
        diff = set((pitch_values(tok, b) - pitch_values(tok, a)).tolist())
        assert len(diff) <= 1  # one shift per window
        shift = diff.pop() if diff else 0
        assert -6 <= shift <= 6
        assert ((pitch_values(tok, b) >= 21) & (pitch_values(tok, b) <= 108)).all()
        shifts.add(shift)
    assert len(shifts) > 5
    again = WindowDataset(ff_cache, "train", 128, augment_transpose=6, seed=3)
    assert all((again.window_ids(i) == aug.window_ids(i)).all() for i in range(0, len(aug), 11))
    aug.set_epoch(1)
    assert any((again.window_ids(i) != aug.window_ids(i)).any() for i in range(0, len(aug), 11))


def test_transposition_is_clamped_to_the_piano(tmp_path: Path) -> None:
    for i in range(3):
        write_midi(tmp_path / "d" / f"{i}.mid", [(0, 22, 240), (240, 107, 240), (480, 60, 240)])
    for name in ("pairs", "tsd"):
        out = tmp_path / f"c-{name}"
        prepare(tmp_path / "d", out, tokenizer=name, workers=1, progress=False)
        ds = WindowDataset(out, "train", 64, augment_transpose=6)
        tok = ds.cache.tokenizer
        shifts = set()
        for epoch in range(40):
            ds.set_epoch(epoch)
            pitches = pitch_values(tok, ds.window_ids(0))
            # 22..107 in the file: only -1, 0, +1 keep every note within 21-108.
            assert len(pitches) == 3 and pitches.min() >= 21 and pitches.max() <= 108
            shifts.add(int(pitches.min()) - 22)
        assert shifts == {-1, 0, 1}, name


def test_dataloader_batches(ff_cache: TokenCache) -> None:
    from torch.utils.data import DataLoader

    x, y = next(iter(DataLoader(WindowDataset(ff_cache, "train", 32), batch_size=4, shuffle=False)))
    assert tuple(x.shape) == tuple(y.shape) == (4, 32)
