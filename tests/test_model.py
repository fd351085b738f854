"""Model shape, KV cache equivalence (the streaming output equals the full output), checkpoints."""

from __future__ import annotations

import pytest
import torch

from tunesmith.errors import BadCheckpointError, BadParameterError
from tunesmith.generation.window import CachedWindow
from tunesmith.model import Transformer, load_checkpoint, preset, save_checkpoint
from tunesmith.model.decode import Decoder, ReferenceDecoder
from tunesmith.tokenization import PairTokenizer

VOCAB = PairTokenizer().vocab_size
STYLES = ["tiny", "tiny-original"]
DECODERS = {"fast": Decoder, "reference": ReferenceDecoder}


def make_model(name: str, seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(preset(name, VOCAB, **overrides)).eval()


def test_presets_match_the_original_and_each_other():
    seed, default = preset("seed", VOCAB), preset("default", VOCAB)
    assert (seed.n_layer, seed.d_model, seed.d_ff, seed.n_head, seed.context, seed.dropout) == (
        6,
        256,
        512,
        8,
        1024,
        0.4,
    )
    n_seed, n_default = Transformer(seed).num_params(), Transformer(default).num_params()
    assert abs(n_seed - n_default) / n_seed < 0.05  # equal budgets make a fair comparison
    with pytest.raises(BadParameterError, match="--preset"):
        preset("huge", VOCAB)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", STYLES)
def test_incremental_decoding_equals_full_forward(name, decoder):
    model = make_model(name)
    step = DECODERS[decoder](model)
    ids = torch.randint(0, VOCAB, (2, 40))
    with torch.inference_mode():
        full, _ = model(ids)
        cache = model.new_cache(2)
        parts = [model(ids[:, :13], cache=cache)[0]]
        parts += [step.step(ids[:, t], cache)[:, None] for t in range(13, 40)]
    assert (torch.cat(parts, 1) - full).abs().max() < 1e-4


def test_cached_forward_with_grad_equals_full_forward():
    """The reference forward takes a cache in any mode: no hidden switch to another path."""
    model = make_model("tiny")
    ids = torch.randint(0, VOCAB, (1, 20))
    full, _ = model(ids)
    cache = model.new_cache(1)
    parts = [model(ids[:, :10], cache=cache)[0]]
    parts += [model(ids[:, t : t + 1], cache=cache)[0] for t in range(10, 20)]
    assert (torch.cat(parts, 1) - full).abs().max() < 1e-4


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", STYLES)
def test_shared_prefix_and_reorder_equal_full_forward(name, decoder):
    model = make_model(name)
    prompt = torch.randint(0, VOCAB, (1, 20))
    rows = torch.randint(0, VOCAB, (4, 8))
    with torch.inference_mode():
        cache = model.new_cache(1)
        model(prompt, cache=cache)
        cache.expand(4)
        model(rows[:, :5], cache=cache)
        order = torch.tensor([3, 3, 0, 1])
        cache.reorder(order)
        got = DECODERS[decoder](model).step(rows[order, 5], cache)
        want, _ = model(torch.cat([prompt.expand(4, -1), rows[order, :6]], 1))
    assert (got - want[:, -1]).abs().max() < 1e-4


def test_a_step_past_the_context_is_refused():
    model = make_model("tiny")  # context 64
    with torch.inference_mode():
        cache = model.new_cache(1)
        model(torch.randint(0, VOCAB, (1, 64)), cache=cache)
        for decoder in DECODERS.values():
            with pytest.raises(ValueError, match="exceeds the context of 64"):
                decoder(model).step(torch.tensor([5]), cache)


@pytest.mark.parametrize("name", STYLES)
def test_sliding_window_past_the_context_equals_uncached(name):
    model = make_model(name)  # context 64
    ids = torch.randint(0, VOCAB, (1, 200))
    with torch.inference_mode():
        window = CachedWindow(Decoder(model), ids[0, :30].tolist())
        for t in range(30, 200):
            window.push(ids[:, t])
            logits = window.logits()
            ref, _ = model(ids[:, window.start : t + 1])
            assert t + 1 - window.start <= model.cfg.context
            assert (logits - ref[:, -1]).abs().max() < 1e-4, t
    assert window.start > 0  # the window did slide


def test_prompt_longer_than_context_uses_its_last_part():
    model = make_model("tiny")
    ids = torch.randint(0, VOCAB, (1, 150))
    with torch.inference_mode():
        window = CachedWindow(Decoder(model), ids[0].tolist())
        ref, _ = model(ids[:, window.start :])
    assert 150 - window.start <= model.cfg.context
    assert (window.logits() - ref[:, -1]).abs().max() < 1e-4


def test_loss_ignores_padding():
    model = make_model("tiny")
    ids = torch.randint(4, VOCAB, (1, 10))
    targets = ids.clone()
    targets[0, 5:] = 0
    _, loss_masked = model(ids, targets)
    logits, _ = model(ids)
    ref = torch.nn.functional.cross_entropy(logits[0, :5], ids[0, :5])
    assert torch.isclose(loss_masked, ref, atol=1e-5)


@pytest.mark.parametrize("name", STYLES)
def test_checkpoint_round_trip(tmp_path, name):
    model = make_model(name)
    save_checkpoint(tmp_path / "ck", model, PairTokenizer(), extra={"train": {"lr": 1e-3}})
    loaded = load_checkpoint(tmp_path / "ck")
    ids = torch.randint(0, VOCAB, (1, 12))
    assert torch.equal(loaded.model(ids)[0], model(ids)[0])
    assert loaded.config["train"] == {"lr": 1e-3}
    assert len(loaded.checksum) == 16


def test_half_precision_storage_keeps_logits(tmp_path):
    model = make_model("tiny")
    save_checkpoint(tmp_path / "ck", model, PairTokenizer(), dtype=torch.float16)
    loaded = load_checkpoint(tmp_path / "ck")
    ids = torch.randint(0, VOCAB, (1, 30))
    assert (loaded.model(ids)[0] - model(ids)[0]).abs().max() < 1e-2


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(BadCheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(BadCheckpointError, match="not a tunesmith checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text('{"architectures": ["GPT2"]}')
    with pytest.raises(BadCheckpointError, match="not a tunesmith checkpoint"):
        load_checkpoint(tmp_path / "foreign")
    save_checkpoint(tmp_path / "ck", make_model("tiny"), PairTokenizer())
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(BadCheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "ck")


def test_checkpoint_write_is_atomic(tmp_path):
    from tunesmith.model.checkpoint import write_folder_atomically

    dest = tmp_path / "ck"
    save_checkpoint(dest, make_model("tiny"), PairTokenizer())
    before = sorted(p.name for p in dest.iterdir())

    def crash(tmp):
        (tmp / "half-written").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_folder_atomically(dest, crash)
    assert sorted(p.name for p in dest.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    load_checkpoint(dest)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", STYLES)
def test_several_rows_with_reorders_past_the_context_equal_uncached(name, threads):
    """The beam-search path: shared prompt, per-row tokens, reorders and slides, at 1 and 2 threads."""
    model = make_model(name)
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(4, VOCAB, (40,), generator=gen).tolist()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            window = CachedWindow(Decoder(model), prompt)
            window.fork(3)
            for t in range(150):
                if t % 7 == 3:  # beams merging and splitting
                    window.reorder(torch.randint(0, 3, (3,), generator=gen))
                tokens = torch.randint(4, VOCAB, (3,), generator=gen)
                if t < 20:
                    tokens[:] = tokens[0]  # rows agreeing for a while
                window.push(tokens)
                logits = window.logits()
                ref, _ = model(window.ids[:, window.start :])
                assert (logits - ref[:, -1]).abs().max() < 1e-4, t
    finally:
        torch.set_num_threads(before)
    assert window.start > 0
