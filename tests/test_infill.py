"""Fill-in-the-middle: the tokenizer's infill ids, FIM windows, infill prompts, FIM training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_midi
from tunesmith.cli.main import main
from tunesmith.data.dataset import TokenCache, WindowDataset
from tunesmith.data.infill import (
    assemble,
    fim_window,
    infill_prompt,
    parse_pairs,
    split_at_span,
)
from tunesmith.data.prepare import prepare
from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.model.checkpoint import load_checkpoint, save_checkpoint
from tunesmith.model.config import preset
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization import build_tokenizer, load_tokenizer, tokenizer_from_dict
from tunesmith.tokenization.base import TokenKind
from tunesmith.tokenization.midi_io import STEPS_PER_BAR
from tunesmith.tokenization.pairs import (
    BOS,
    DUR_OFFSET,
    EOS,
    FILL_END,
    GAP,
    MIDDLE,
    PAD,
    SEP,
    SUFFIX,
    PairTokenizer,
)

GRID = np.array(
    [[0, 60, 20], [0, 48, 40], [4, 62, 4], [8, 64, 4], [16, 65, 4], [20, 67, 8], [28, 69, 12]]
    + [[32, 71, 4], [36, 72, 4], [48, 74, 4]]
)


def decode(tok: PairTokenizer, ids: list[int]) -> list[list[int]]:
    return tok.decode_grid(ids).tolist()


def parts(ids: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    """prefix, gap duration ids, suffix, middle (FILL_END and padding dropped) of FIM ids."""
    g, s, m = ids.index(GAP), ids.index(SUFFIX), ids.index(MIDDLE)
    end = ids.index(FILL_END) if FILL_END in ids else len(ids)
    return ids[:g], ids[g + 1 : s], ids[s + 1 : m], ids[m + 1 : end]


def advance(ids: list[int]) -> int:
    """Steps the SEP pairs of seed ids advance."""
    return sum(b - DUR_OFFSET for a, b in zip(ids, ids[1:], strict=False) if a == SEP)


# --- the tokenizer ------------------------------------------------------------------------


def test_infill_ids_come_after_the_old_ones(tmp_path: Path) -> None:
    old, new = PairTokenizer(), PairTokenizer(infill=True)
    assert old.vocab_size == 296 and new.vocab_size == 304
    assert (GAP, SUFFIX, MIDDLE, FILL_END) == (296, 297, 298, 299)
    assert (new.kinds[:296] == old.kinds).all()
    assert [new.token_str(i) for i in range(296)] == [old.token_str(i) for i in range(296)]
    assert [new.token_str(i) for i in (296, 297, 298, 299)] == [
        "GAP",
        "SUFFIX",
        "MIDDLE",
        "FILL_END",
    ]
    assert (new.kinds[[GAP, SUFFIX, MIDDLE, FILL_END]] == TokenKind.SPECIAL).all()
    # Version 1 is written as before (under the new name); version 2 records the flag.
    assert old.to_dict() == {"type": "pairs", "version": 1, "vocab_size": 296}
    assert new.to_dict() == {"type": "pairs", "version": 2, "infill": True, "vocab_size": 304}
    new.save(tmp_path / "t.json")
    assert load_tokenizer(tmp_path / "t.json").vocab_size == 304
    # A version-1 checkpoint (v1 of the bundled model, the v2 pretraining run) keeps loading.
    v1 = Path(__file__).parents[1] / "models/v2-pretrain-step700/tokenizer.json"
    assert load_tokenizer(v1).to_dict() == old.to_dict()
    bundled = Path(__file__).parents[1] / "src/tunesmith/pretrained/ff-piano/tokenizer.json"
    assert load_tokenizer(bundled).to_dict() == new.to_dict()
    for bad in ({"type": "seed", "version": 3}, {"type": "seed", "version": 1, "infill": True}):
        with pytest.raises(TunesmithError, match="pairs tokenizer config"):
            tokenizer_from_dict(bad)
    with pytest.raises(BadParameterError, match="--fim-rate"):
        build_tokenizer("tsd").with_infill()
    # Decoding skips the specials: the plain notes of a FIM sequence come out.
    assert decode(new, [GAP, 4 + 60, DUR_OFFSET + 4, MIDDLE, FILL_END]) == [[0, 60, 4]]


# --- FIM windows and prompts ------------------------------------------------------------------


def test_split_at_span_trims_notes_held_across_the_edges() -> None:
    prefix, middle, suffix = split_at_span(GRID, 16, 32)
    assert prefix.tolist() == [[0, 60, 16], [0, 48, 16], [4, 62, 4], [8, 64, 4]]
    assert middle.tolist() == [[0, 65, 4], [4, 67, 8], [12, 69, 4]]  # 69 held past 32: trimmed
    assert suffix.tolist() == [[0, 71, 4], [4, 72, 4], [16, 74, 4]]


def test_fim_window_layout_and_round_trip() -> None:
    tok = PairTokenizer(infill=True)
    ids = tok.encode_grid(GRID)
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = fim_window(ids[:0], ids, True, 80, rng)
        assert w is not None and len(w.ids) == 80
        seq = w.ids.tolist()
        start, stop = w.span
        assert start % STEPS_PER_BAR == 0 and stop % STEPS_PER_BAR == 0 and stop > start
        head, gap, tail, mid = parts(seq)
        assert head[:2] == [BOS, PAD] and tail[-1] == EOS  # the window is the whole piece
        assert sum(d - DUR_OFFSET for d in gap) == stop - start
        assert advance(mid) == stop - start  # the fill ends exactly where the suffix begins
        # Every note comes back: prefix and middle trimmed at the span, suffix as it was.
        pre, middle, suf = split_at_span(GRID, start, stop)
        assert decode(tok, head) == pre.tolist()
        assert (
            decode(tok, mid) == middle.tolist()
            and (middle[:, 0] + middle[:, 2] <= stop - start).all()
        )
        assert decode(tok, tail) == suf.tolist()
        # No target for the ids the pipeline chose: GAP, the gap's length, MIDDLE.
        g = seq.index(GAP)
        assert np.flatnonzero(w.no_target).tolist() == [
            *range(g, g + 1 + len(gap)),
            seq.index(MIDDLE),
        ]


def test_fim_window_cut_to_fit_and_mid_piece() -> None:
    tok = PairTokenizer(infill=True)
    ids = tok.encode_grid(GRID)
    rng = np.random.default_rng(1)
    seen = set()
    for cut in range(3, 12):  # windows starting mid-piece (mid-pair too), ending mid-piece
        for length in (30, 36, 60):
            w = fim_window(ids[:cut], ids[cut:-2], False, length, rng)
            if w is None:
                continue
            seq = w.ids.tolist()
            head, gap, tail, mid = parts(seq)
            assert BOS not in head and EOS not in tail and seq[len(seq) - 1] in (PAD, FILL_END)
            assert advance(mid) == sum(d - DUR_OFFSET for d in gap) == w.span[1] - w.span[0]
            # The span's notes are all in the window: it starts after the window's first onset.
            first_onset = int(parse_pairs(ids)[1][parse_pairs(ids)[0] >= cut][0])
            assert w.span[0] > first_onset
            seen.add(length)
    assert seen == {30, 36, 60}
    assert fim_window(ids[:0], ids[:6], False, 60, rng) is None  # no whole bar in it


def test_infill_prompt() -> None:
    tok = PairTokenizer(infill=True)
    p = infill_prompt(GRID, (2, 2))
    assert (p.start, p.stop, p.gap) == (16, 32, 16)
    head, gap, tail, mid = parts(p.ids)
    assert p.ids[-1] == MIDDLE and mid == []
    assert head[:2] == [BOS, PAD] and gap == [DUR_OFFSET + 16] and tail[-1] == EOS
    assert advance(head) == 16  # the prefix runs up to the gap
    assert (
        decode(tok, head) == p.prefix.tolist() == [[0, 60, 16], [0, 48, 16], [4, 62, 4], [8, 64, 4]]
    )
    assert p.suffix.tolist() == [[32, 71, 4], [36, 72, 4], [48, 74, 4]]
    assert [[s - 32, q, d] for s, q, d in p.suffix.tolist()] == decode(tok, tail)
    # The original middle back in the gap: the piece with the notes held across the edges trimmed.
    whole = assemble(p, split_at_span(GRID, 16, 32)[1]).tolist()
    trimmed = GRID.copy()
    trimmed[[0, 1, 6], 2] = [16, 16, 4]
    assert whole == trimmed.tolist()
    short = infill_prompt(GRID, (2, 3), max_tokens=14)
    assert len(short.ids) <= 14 and short.ids[-1] == MIDDLE and BOS not in short.ids
    long_gap = infill_prompt(np.array([[0, 60, 4], [400, 60, 4]]), (1, 20))
    assert parts(long_gap.ids)[1] == [DUR_OFFSET + 160, DUR_OFFSET + 160]
    for bars, needle in (((9, 3), "first-last"), ((0, 2), "first-last"), ((3, 5), "only 4 bars")):
        with pytest.raises(BadParameterError, match=needle):
            infill_prompt(GRID, bars)


# --- the dataset ----------------------------------------------------------------------------


def song(seed: int, bars: int = 12) -> list[tuple[int, int, int]]:
    """A two-hand song on the 16th grid (ticks of 120): a varied melody over a bar-long bass."""
    rng = np.random.default_rng(seed)
    notes = []
    for b in range(bars):
        notes.append((b * 16 * 120, 40 + int(rng.integers(0, 8)), 16 * 120))
        step = 0
        while step < 16:
            d = int(rng.choice([2, 4, 4, 6, 8]))
            notes.append(((b * 16 + step) * 120, 60 + int(rng.integers(0, 12)), d * 120))
            step += d
    return notes


@pytest.fixture(scope="module")
def songs_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("songs")
    for i in range(24):
        write_midi(root / "midi" / f"s{i}.mid", song(i), tpq=480)
    prepare(root / "midi", root / "cache", tokenizer="pairs", workers=1, progress=False)
    return root / "cache"


def test_dataset_fim_share_determinism_and_targets(songs_cache: Path) -> None:
    cache = TokenCache(songs_cache)
    plain = WindowDataset(cache, "train", 96, augment_transpose=3, seed=5)
    fim = WindowDataset(cache, "train", 96, augment_transpose=3, seed=5, fim_rate=0.5)
    n_fim = 0
    for i in range(len(fim)):
        a, b = plain.window_ids(i), fim.window_ids(i)
        if GAP not in b:
            assert (a == b).all()  # the others are untouched, transposition included
            continue
        n_fim += 1
        assert len(b) == 97 and set(b.tolist()) >= {GAP, SUFFIX, MIDDLE, FILL_END}
        x, y = fim[i]
        assert (x == torch.from_numpy(b[:-1])).all()
        assert GAP not in y.tolist() and MIDDLE not in y.tolist() and FILL_END in y.tolist()
    assert 0.3 < n_fim / len(fim) < 0.7
    again = WindowDataset(cache, "train", 96, augment_transpose=3, seed=5, fim_rate=0.5)
    assert all((again.window_ids(i) == fim.window_ids(i)).all() for i in range(len(fim)))
    fim.set_epoch(1)
    assert any((again.window_ids(i) != fim.window_ids(i)).any() for i in range(len(fim)))
    with pytest.raises(BadParameterError, match="fim_rate"):
        WindowDataset(cache, "train", 96, fim_rate=1.5)


# --- training -------------------------------------------------------------------------------

QUIET = [
    "--batch-size", "8", "--warmup-steps", "5", "--eval-every", "1000", "--eval-batches", "1",
    "--sample-notes", "0", "--threads", "1", "--quiet", "--no-tensorboard", "--precision", "fp32",
    "--log-every", "10",
]  # fmt: skip
TINY = ["--preset", "tiny", "--lr", "3e-3", *QUIET]


def train(*args: str | Path) -> int:
    return main(["train", *map(str, args)])


def test_init_from_an_old_checkpoint_grows_the_embedding(
    songs_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for style in ("tiny", "tiny-original"):  # tied and untied output layer (with a bias)
        old = tmp_path / f"old-{style}"
        base = Transformer(preset(style, 296))
        save_checkpoint(old, base, PairTokenizer())
        out = tmp_path / f"ft-{style}"
        args = ["--seq-len", "64", "--max-steps", "2", "--fim-rate", "0.5", *QUIET]
        assert train(songs_cache, "--out", out, "--init-from", old, *args) == 0
        ft = load_checkpoint(out / "last")
        assert ft.tokenizer.to_dict()["infill"] and ft.model.cfg.vocab_size == 304
        assert json.loads((out / "last" / "tokenizer.json").read_text())["version"] == 2
        if style == "tiny-original":
            continue
        # Resuming keeps the grown vocabulary; fine-tuning it again (no FIM) keeps its ids.
        assert train(songs_cache, "--out", out, "--resume", "--max-steps", "3", "--quiet") == 0
        again = tmp_path / f"again-{style}"
        assert (
            train(songs_cache, "--out", again, "--init-from", out / "last", *args[:4], *QUIET) == 0
        )
        assert load_checkpoint(again / "last").model.cfg.vocab_size == 304
    # The old rows start from the old weights, the new ones fresh.
    small = tmp_path / "small"
    base = Transformer(preset("tiny", 296))
    save_checkpoint(small, base, PairTokenizer())
    args = ["--seq-len", "64", "--max-steps", "1", "--fim-rate", "1", "--lr", "1e-9", *QUIET]
    assert train(songs_cache, "--out", tmp_path / "g", "--init-from", small, *args) == 0
    grown = load_checkpoint(tmp_path / "g" / "last").model.embed.weight
    assert torch.allclose(grown[:296], base.embed.weight, atol=1e-5)
    # Any other tokenizer difference is still refused.
    remi = tmp_path / "remi"
    tsd = build_tokenizer("tsd")
    save_checkpoint(remi, Transformer(preset("tiny", tsd.vocab_size)), tsd)
    capsys.readouterr()
    code = train(songs_cache, "--out", tmp_path / "r", "--init-from", remi)
    err = capsys.readouterr().err
    assert code == 2 and "made with the 'pairs' tokenizer, not 'tsd'" in err
    assert not (tmp_path / "r").exists()
    # A --tokenizer other than the checkpoint's: refused by name, before any data is read.
    code = train(songs_cache, "--out", tmp_path / "r", "--init-from", remi, "--tokenizer", "pairs")
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith(
        "the checkpoint's tokenizer is 'tsd', not 'pairs' (leave --tokenizer out)"
    )
    assert len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_an_infill_model_generates_left_to_right(tmp_path: Path) -> None:
    from tunesmith.generation.generator import Generator

    save_checkpoint(tmp_path / "m", Transformer(preset("tiny", 304)), PairTokenizer(infill=True))
    for search in ("top_k", "greedy"):
        res = Generator.from_pretrained(tmp_path / "m").generate(None, notes=16, search=search)
        assert res.n_new_notes >= 1 and max(res.ids) < 296  # the grammar masks the infill ids


def test_fim_rate_is_checked(songs_cache: Path, tmp_path: Path, capsys) -> None:
    assert train(songs_cache, "--out", tmp_path / "r", "--fim-rate", "2", *TINY) == 2
    assert "--fim-rate must be within 0..1" in capsys.readouterr().err


@torch.no_grad()
def fill(model: Transformer, prompt: list[int], limit: int = 48) -> list[int]:
    """Greedy middle ids after ``prompt`` up to ``FILL_END``, under the encoding's pair grammar only.

    Pitch, SEP or FILL_END after a whole pair; a duration after a pitch or SEP. Nothing
    steers the length: closing the gap exactly is the model's own doing.
    """
    vocab = model.cfg.vocab_size
    heads = torch.zeros(vocab, dtype=torch.bool)
    heads[[SEP, FILL_END, *range(4, DUR_OFFSET)]] = True
    values = torch.zeros(vocab, dtype=torch.bool)
    values[DUR_OFFSET + 1 : DUR_OFFSET + 161] = True
    ids = list(prompt)
    for _ in range(limit):
        logits, _ = model(torch.tensor([ids[-model.cfg.context :]]))
        if len(ids) > len(prompt) and heads[ids[-1]]:
            t = int(logits[0, -1].masked_fill(~values, float("-inf")).argmax())
        else:  # the likeliest kind first (128 pitches share their mass), then its likeliest id
            probs = logits[0, -1].softmax(-1)
            kind = int(
                torch.stack([probs[4:DUR_OFFSET].sum(), probs[SEP], probs[FILL_END]]).argmax()
            )
            t = (4 + int(probs[4:DUR_OFFSET].argmax()), SEP, FILL_END)[kind]
        if t == FILL_END:
            return ids[len(prompt) :]
        ids.append(t)
    return []  # never closed


@pytest.mark.slow  # minutes on a loaded CPU: a training run and 40 greedy fills
@pytest.mark.xfail(
    reason="not yet shown: after 150 steps P(FILL_END) is ~1% at the true end, fills never close",
    strict=False,
)
def test_tiny_model_learns_to_close_the_gap(songs_cache: Path, tmp_path: Path) -> None:
    """At fim_rate 0.5, a short run teaches a tiny model to fill 1- and 2-bar gaps exactly."""
    args = ["--seq-len", "128", "--max-steps", "150", "--fim-rate", "0.5", "--dropout", "0", *TINY]
    assert train(songs_cache, "--out", tmp_path / "run", *args) == 0
    trained = load_checkpoint(tmp_path / "run" / "last").model
    untrained = Transformer(trained.cfg).eval()
    cache = TokenCache(songs_cache)
    exact = {"trained": 0, "untrained": 0}
    prompts = 0
    for f in range(10):
        grid = PairTokenizer().decode_grid(cache.file_tokens("train", f))
        for bars in ((2, 2), (4, 5)):  # gaps of 16 and 32 steps
            p = infill_prompt(grid, bars, max_tokens=64)
            prompts += 1
            for name, model in (("trained", trained), ("untrained", untrained)):
                exact[name] += advance(fill(model, p.ids)) == p.gap
    assert exact["trained"] / prompts >= 0.6, exact
    assert exact["untrained"] / prompts <= 0.2, exact


def test_run_tokenizer_refuses_another_checkpoint_tokenizer(tmp_path: Path) -> None:
    from tunesmith.training.data import run_tokenizer

    with pytest.raises(TunesmithError, match="differs from the --init-from checkpoint's"):
        run_tokenizer(tmp_path, PairTokenizer(), build_tokenizer("tsd"), infill=False)
