"""Positions in the bar: the clock's rules, the windows that carry them, the model that embeds
them (one forward path, every decoding step, growth from a model without them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_corpus
from tunesmith.cli.main import main
from tunesmith.data.dataset import TokenCache, WindowDataset
from tunesmith.data.infill import infill_prompt
from tunesmith.data.prepare import prepare
from tunesmith.evaluation.loss import evaluate_loss
from tunesmith.generation import GenerationConfig, Generator
from tunesmith.generation.grammar import PairGrammar
from tunesmith.generation.window import CachedWindow
from tunesmith.model import Transformer, load_checkpoint, preset
from tunesmith.model.config import ModelConfig
from tunesmith.model.decode import Decoder, ReferenceDecoder
from tunesmith.tokenization.bar_clock import BarClock, bar_positions
from tunesmith.tokenization.midi_io import score_from_grid
from tunesmith.tokenization.pairs import (
    BOS,
    DUR_OFFSET,
    EOS,
    FILL_END,
    GAP,
    MIDDLE,
    PAD,
    PITCH_OFFSET,
    SEP,
    SUFFIX,
    PairTokenizer,
)
from tunesmith.training.config import TrainConfig
from tunesmith.training.setup import build_model

TOK = PairTokenizer(infill=True)
DECODERS = {"fast": Decoder, "reference": ReferenceDecoder}


def d(steps: int) -> int:
    return DUR_OFFSET + steps


def p(pitch: int) -> int:
    return PITCH_OFFSET + pitch


def bar_model(style: str = "tiny", seed: int = 0, context: int = 64) -> Transformer:
    """A tiny model with bar positions whose embedding matters (random, not zeros);
    ``tiny-16``: heads of 16, which the fused onnx graph runs."""
    torch.manual_seed(seed)
    overrides = {"n_head": 2} if style == "tiny-16" else {}
    cfg = preset(style.replace("-16", ""), TOK.vocab_size, context=context, bar_positions=True,
                 **overrides)  # fmt: skip
    model = Transformer(cfg, pad_id=TOK.pad_id).eval()
    with torch.no_grad():
        model.embed.weight.mul_(8)
        model.bar_embed.weight.normal_(0, 2.0)
    return model


# -- the clock -------------------------------------------------------------------------


def test_positions_of_a_hand_written_fill_in_the_middle_window() -> None:
    ids = [BOS, PAD, p(60), d(4), SEP, d(3), p(62), d(2), SEP, d(13),  # to step 16
           GAP, d(32), SUFFIX, SEP, d(2), p(64), d(1), EOS,  # the gap is steps 16..48
           MIDDLE, p(65), d(4), SEP, d(5), p(67), d(3), SEP, d(27), FILL_END, PAD]  # fmt: skip
    want = [0, 0, 0, 0, 0, 3, 3, 3, 3, 0,
            0, 0, 0, 0, 2, 2, 2, 2,  # after SUFFIX: the gap's end (48), then 50
            0, 0, 0, 0, 5, 5, 5, 5, 0, 0, 0]  # fmt: skip
    assert bar_positions(ids).tolist() == want
    assert bar_positions(ids, start_step=7).tolist() == [(w + 7) % 16 for w in want]


def test_positions_of_plain_ids_are_the_notes_onsets() -> None:
    rng = np.random.default_rng(0)
    onsets = np.sort(rng.integers(0, 900, 200))
    grid = np.stack([onsets, rng.integers(30, 90, 200), rng.integers(1, 40, 200)], 1)
    grid = grid[np.lexsort((-grid[:, 2], -grid[:, 1], grid[:, 0]))]
    ids = PairTokenizer().encode_grid(grid)
    pos = bar_positions(ids)
    is_pitch = (ids >= PITCH_OFFSET) & (ids < DUR_OFFSET)
    assert pos[is_pitch].tolist() == (grid[:, 0] % 16).tolist()


def grammar_walk(prompt: list[int], n: int, rng: np.random.Generator) -> tuple[list, list]:
    """Random legal ids after ``prompt`` and the grammar's step after each."""
    grammar = PairGrammar(TOK, GenerationConfig(stop_at_eos=False))
    grammar.feed_prompt(prompt)
    ids, steps = [], []
    for _ in range(n):
        legal = np.flatnonzero(grammar.allowed()[0])
        ids.append(int(rng.choice(legal)))
        grammar.update(np.array(ids[-1:]))
        steps.append(int(grammar.step[0]))
    return ids, steps


def test_the_clock_equals_the_batch_function_and_the_grammar_on_random_walks() -> None:
    rng = np.random.default_rng(1)
    piece = np.array([[s, 60 + s % 7, 3] for s in range(0, 96, 3)])
    fill = infill_prompt(piece, (3, 4)).ids  # the middle starts at step 32: bar-aligned
    for prompt in ([BOS, PAD], fill):
        rows = [grammar_walk(prompt, 150, rng) for _ in range(4)]
        clock = BarClock()
        head = clock.feed_prompt(prompt)
        assert head.tolist() == bar_positions(prompt).tolist()
        clock.reorder([0, 0, 0, 0])
        histories = [list(prompt) for _ in rows]
        for t in range(150):
            if t % 7 == 6:  # a beam's reorder: row i continues row order[i]
                order = rng.integers(0, 4, 4)
                clock.reorder(order)
                histories = [list(histories[i]) for i in order]
                rows = [rows[i] for i in order]
            tokens = [r[0][t] for r in rows]
            got = clock.feed(tokens)
            for i, h in enumerate(histories):
                h.append(tokens[i])
                assert got[i] == bar_positions(h)[-1]
                assert got[i] == rows[i][1][t] % 16  # the grammar's own step


# -- windows ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = make_corpus(tmp_path_factory.mktemp("corpus"), n_good=6, bad=False)
    out = tmp_path_factory.mktemp("cache") / "cache"
    prepare(corpus, out, tokenizer="pairs", workers=1, progress=False)
    return out


def test_windows_carry_their_files_positions(cache: Path) -> None:
    plain = WindowDataset(cache, "train", 48, bar_positions=True)
    fim = WindowDataset(cache, "train", 48, fim_rate=1.0, seed=2, bar_positions=True)
    seen_fim = 0
    for i in range(len(plain)):
        f, start, stop = plain.window(i)
        whole = np.append(plain.cache.file_tokens("train", f), EOS)
        want = bar_positions(whole)[start:stop]
        got = plain.window_positions(i)
        assert got[: len(want)].tolist() == want.tolist()
        assert (got[len(want) :] == want[-1]).all()  # PAD keeps the time
        x, _, pos = plain[i]
        assert pos.tolist() == got[:-1].tolist() and len(x) == len(pos)
        ids, pos = fim.window_ids(i), fim.window_positions(i)
        if GAP in ids:  # the gap is whole bars: GAP, SUFFIX, MIDDLE and FILL_END on bar lines
            seen_fim += 1
            marks = np.isin(ids, [GAP, SUFFIX, MIDDLE, FILL_END])
            assert (pos[marks] == 0).all(), pos[marks]
    assert seen_fim > 0
    assert len(WindowDataset(cache, "train", 48)[0]) == 2  # without: (input, target) as before


# -- the model -------------------------------------------------------------------------


def test_config_without_the_field_loads_and_saves_unchanged() -> None:
    old = preset("tiny", 296).to_dict()
    assert "bar_positions" not in old
    assert ModelConfig.from_dict(old).bar_positions is False
    cfg = ModelConfig.from_dict({**old, "bar_positions": True})
    assert cfg.to_dict()["bar_positions"] is True
    assert not hasattr(Transformer(preset("tiny", 296)), "bar_embed")


def test_a_bar_model_refuses_missing_positions_and_zero_init_changes_nothing() -> None:
    torch.manual_seed(0)
    model = Transformer(preset("tiny", TOK.vocab_size, bar_positions=True)).eval()
    ids = torch.randint(0, TOK.vocab_size, (2, 10))
    with pytest.raises(ValueError, match="bar_pos"):
        model(ids)
    with pytest.raises(ValueError, match="bar_pos"):
        Transformer(preset("tiny", TOK.vocab_size))(ids, bar_pos=torch.zeros_like(ids))
    assert (model.bar_embed.weight == 0).all()


@pytest.mark.parametrize("style", ["tiny", "tiny-original"])
def test_init_from_grows_the_embedding_and_keeps_the_logits(style: str) -> None:
    torch.manual_seed(3)
    base = Transformer(preset(style, TOK.vocab_size)).eval()
    cfg = TrainConfig(preset=None, seq_len=32, bar_positions=True, dropout=0.0)
    grown = build_model(cfg, TOK.vocab_size, TOK.pad_id, base).eval()
    assert grown.cfg.bar_positions and (grown.bar_embed.weight == 0).all()
    ids = torch.randint(0, TOK.vocab_size, (2, 30))
    pos = torch.randint(0, 16, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(grown(ids, bar_pos=pos)[0], base(ids)[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("style", ["tiny", "tiny-original"])
def test_cached_steps_equal_the_full_forward(style: str, decoder: str) -> None:
    model = bar_model(style)
    step = DECODERS[decoder](model)
    ids, pos = torch.randint(0, TOK.vocab_size, (3, 40)), torch.randint(0, 16, (3, 40))
    ids[:, :10], pos[:, :10] = ids[0, :10].clone(), pos[0, :10].clone()  # the shared segment
    with torch.inference_mode():
        full, _ = model(ids, bar_pos=pos)
        cache = model.new_cache(1)
        model(ids[:1, :10], cache=cache, bar_pos=pos[:1, :10])
        cache.expand(3)
        parts = [model(ids[:, 10:13], cache=cache, bar_pos=pos[:, 10:13])[0]]
        parts += [step.step(ids[:, t], cache, pos[:, t])[:, None] for t in range(13, 40)]
        without = model(ids[:, :5], bar_pos=torch.zeros_like(pos[:, :5]))[0]
    got = torch.cat(parts, 1)
    assert (got - full[:, 10:]).abs().max() < 1e-5
    assert (without - full[:, :5]).abs().max() > 1e-3  # the positions do matter


def test_the_window_past_the_context_equals_the_reference_forward() -> None:
    model = bar_model()
    window = CachedWindow(Decoder(model), [BOS, PAD, p(60), d(4), SEP, d(3)])
    window.fork(3)
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for t in range(150):  # well past the context of 64: the window slides
            if t % 5 == 4:
                window.reorder(torch.randint(0, 3, (3,), generator=gen))
            window.push(torch.randint(SEP, DUR_OFFSET + 20, (3,), generator=gen))
            got = window.logits()
            rows = [bar_positions(r) for r in window.ids.numpy()]
            pos = torch.from_numpy(np.stack(rows).astype(np.int64))
            ref, _ = model(window.ids[:, window.start :], bar_pos=pos[:, window.start :])
            torch.testing.assert_close(got, ref[:, -1], atol=1e-4, rtol=0)
    assert window.start > 0


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")
@pytest.mark.parametrize("style", ["tiny", "tiny-original"])
def test_the_onnx_step_equals_the_torch_step(style: str) -> None:
    from tunesmith.generation.search import beam_search, sample
    from tunesmith.model.backends import open_backend

    model = bar_model(style)
    onnx = open_backend("onnx", model, None, None, 1)
    cfg = GenerationConfig(search="greedy", notes=60, stop_at_eos=False)
    beam = GenerationConfig(search="beam", beam_width=3, notes=30, stop_at_eos=False)
    with torch.inference_mode():
        for c, run in ((cfg, sample), (beam, beam_search)):
            ref = run(model, TOK, [BOS, PAD], c, None, decoder=Decoder(model))
            got = run(model, TOK, [BOS, PAD], c, None, decoder=onnx.decoder(model))
            assert got.ids == ref.ids and len(ref.ids) > 30


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")
@pytest.mark.parametrize("style", ["tiny-16", "tiny-original"])
def test_the_fused_onnx_step_takes_positions_in_the_bar(style: str) -> None:
    """Batch 1 runs the fused graph, bar positions included, past the context."""
    from tunesmith.model.backends import open_backend

    model = bar_model(style)
    decoder = open_backend("onnx", model, None, None, 1).decoder(model)
    assert decoder._fused is not None
    window = CachedWindow(decoder, [BOS, PAD, p(60), d(4), SEP, d(3)])
    gen = torch.Generator().manual_seed(2)
    with torch.inference_mode():
        for _ in range(100):
            window.push(torch.randint(SEP, DUR_OFFSET + 20, (1,), generator=gen))
            got = window.logits()  # slides the window first when it is full
            pos = torch.from_numpy(bar_positions(window.ids[0].numpy()).astype(np.int64))
            ref, _ = model(window.ids[:, window.start :], bar_pos=pos[None, window.start :])
            torch.testing.assert_close(got, ref[:, -1], atol=1e-3, rtol=0)
    assert window.start > 0


SEARCHES = [
    {"search": "greedy"},
    {"search": "top_k", "seed": 4},
    {"search": "top_p", "seed": 1},
    {"search": "beam", "beam_width": 3},
]


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(bar_model(context=256), TOK, backend="torch")


@pytest.mark.parametrize("params", SEARCHES, ids=lambda q: q["search"])
def test_generate_and_infill_with_every_search(gen: Generator, params: dict) -> None:
    piece = score_from_grid(np.array([[s, 60 + s % 5, 2] for s in range(0, 96, 2)]))
    a = gen.generate(piece, notes=40, **params)  # a 48-note prompt + 40: the window slides
    assert a.n_new_notes > 0 and a.stop_reason in ("length", "eos")
    assert gen.generate(piece, notes=40, **params).ids == a.ids
    fill = gen.infill(piece, bars=(2, 3), **params)
    assert fill.span == (16, 48) and fill.ids[-1] == FILL_END
    assert gen.infill(piece, bars=(2, 3), **params).ids == fill.ids


def test_evaluate_loss_feeds_positions(cache: Path) -> None:
    model = bar_model()
    ids = np.asarray(TokenCache(cache).file_tokens("train", 0)[:40], dtype=np.int64)
    result = evaluate_loss(model, [ids], TOK.pad_id, EOS, seq_len=63)
    seq = torch.from_numpy(np.append(ids, EOS).astype(np.int64))[None]
    pos = torch.from_numpy(bar_positions(seq[0].numpy()).astype(np.int64))[None]
    with torch.no_grad():
        _, want = model(seq[:, :-1], seq[:, 1:], bar_pos=pos[:, :-1])
    assert result.loss == pytest.approx(float(want), rel=1e-5)


def test_train_with_bar_positions_saves_them_and_resume_keeps_them(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = ["--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--eval-every", "3",
            "--sample-notes", "8", "--threads", "1", "--quiet", "--no-tensorboard",
            "--precision", "fp32", "--fim-rate", "0.5"]  # fmt: skip
    run = tmp_path / "r"
    assert main(["train", str(cache), "--out", str(run), *tiny, "--max-steps", "3",
                 "--bar-positions"]) == 0  # fmt: skip
    ckpt = load_checkpoint(run / "last")
    assert ckpt.model.cfg.bar_positions and (ckpt.model.bar_embed.weight != 0).any()
    assert main(["train", str(cache), "--out", str(run), "--resume", "--max-steps", "4"]) == 0
    other = tmp_path / "o"
    assert main(["train", str(cache), "--out", str(other), *tiny, "--max-steps", "3"]) == 0
    capsys.readouterr()
    code = main(["train", str(cache), "--out", str(other), "--resume", "--bar-positions"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "bar_positions" in err and "\n" not in err
