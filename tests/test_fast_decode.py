"""The ONNX Runtime step (``--backend onnx``) against the reference forward and the torch step.

Skipped when the ``fast`` extra (onnxruntime, onnx) is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from tunesmith.cli.main import main  # noqa: E402
from tunesmith.errors import BadParameterError  # noqa: E402
from tunesmith.generation.config import GenerationConfig  # noqa: E402
from tunesmith.generation.generator import Generator  # noqa: E402
from tunesmith.generation.search import beam_search, sample  # noqa: E402
from tunesmith.generation.window import CachedWindow  # noqa: E402
from tunesmith.model import backend_names, backends  # noqa: E402
from tunesmith.model.backends import open_backend  # noqa: E402
from tunesmith.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from tunesmith.model.config import preset  # noqa: E402
from tunesmith.model.decode import Decoder  # noqa: E402
from tunesmith.model.step_cache import StepArtifact  # noqa: E402
from tunesmith.model.transformer import Transformer  # noqa: E402
from tunesmith.tokenization.pairs import PairTokenizer  # noqa: E402

TOK = PairTokenizer()


def tiny_model(style: str) -> Transformer:
    """A tiny random model (context 64) whose logits are far from uniform; ``tiny-16``: the
    modern style with heads of 16 (the fused graph rotates heads of a multiple of 16)."""
    torch.manual_seed(7)
    overrides = {"n_head": 2} if style == "tiny-16" else {}
    cfg = preset(style.replace("-16", ""), TOK.vocab_size, **overrides)
    model = Transformer(cfg, pad_id=TOK.pad_id).eval()
    with torch.no_grad():
        model.embed.weight.mul_(8)
    return model


def onnx_step(model: Transformer) -> backends.StepBackend:
    """The onnx backend of a model without checkpoint (exported to memory)."""
    step = open_backend("onnx", model, None, None, 1)
    assert step.name == "onnx"
    return step


def stop_after(n: int):  # noqa: ANN201
    """A generation callback that cancels after ``n`` tokens."""
    calls = {"n": 0}

    def callback(_done: int, _total: int) -> bool:
        calls["n"] += 1
        return calls["n"] >= n

    return callback


@pytest.fixture(scope="module", params=["tiny", "tiny-original", "tiny-16"])
def tiny(request: pytest.FixtureRequest) -> tuple[Transformer, backends.StepBackend]:
    """A tiny model of each style and its onnx step (exported once per module)."""
    model = tiny_model(request.param)
    return model, onnx_step(model)


@torch.inference_mode()
def test_logits_match_the_reference_forward_past_the_context(tiny) -> None:
    model, step = tiny
    window = CachedWindow(step.decoder(model), [1, 0, 60, 140])
    window.fork(3)  # beam-shaped: a shared prompt, rows reordered every step
    gen = torch.Generator().manual_seed(0)
    for step in range(150):  # well past the context of 64: the window slides
        if step % 5 == 4:
            window.reorder(torch.randint(0, 3, (3,), generator=gen))
        window.push(torch.randint(4, 290, (3,), generator=gen))
        got = window.logits()
        ref, _ = model(window.ids[:, window.start :])  # the uncached reference forward
        torch.testing.assert_close(got, ref[:, -1], atol=1e-3, rtol=0)
    assert window.start > 0


@torch.inference_mode()
def test_batch_1_logits_match_the_reference_forward_past_the_context(tiny) -> None:
    """One row: the fused graph where the model has one (its attention appends in place)."""
    model, step = tiny
    decoder = step.decoder(model)
    window = CachedWindow(decoder, [1, 0, 60, 140])
    gen = torch.Generator().manual_seed(1)
    for _ in range(150):  # past the context of 64: the window slides, the storage changes
        window.push(torch.randint(4, 290, (1,), generator=gen))
        got = window.logits()
        ref, _ = model(window.ids[:, window.start :])
        torch.testing.assert_close(got, ref[:, -1], atol=1e-3, rtol=0)
    assert window.start > 0
    fusable = model.cfg.head_dim % 16 == 0 or model.cfg.style == "original"
    assert (decoder._fused is not None) == fusable


def test_greedy_gives_the_torch_tokens_for_512_tokens_on_a_tiny_model(tiny) -> None:
    model, step = tiny
    cfg = GenerationConfig(search="greedy", notes=100_000, stop_at_eos=False)
    with torch.inference_mode():
        ref = sample(model, TOK, [1, 0], cfg, stop_after(512), decoder=Decoder(model))
        got = sample(model, TOK, [1, 0], cfg, stop_after(512), decoder=step.decoder(model))
    assert len(ref.ids) >= 512
    assert got.ids == ref.ids


def test_beam_search_gives_the_torch_piece(tiny) -> None:
    model, step = tiny
    cfg = GenerationConfig(search="beam", beam_width=4, notes=40, stop_at_eos=False)
    with torch.inference_mode():
        ref = beam_search(model, TOK, [1, 0], cfg, None, decoder=Decoder(model))
        got = beam_search(model, TOK, [1, 0], cfg, None, decoder=step.decoder(model))
    assert got.ids == ref.ids and len(got.ids) > 40


@pytest.fixture(scope="module")
def bundled() -> tuple[Generator, Generator]:
    """The bundled model on both backends (the export built into the test's cache)."""
    return Generator.from_pretrained(backend="torch"), Generator.from_pretrained(backend="onnx")


def test_bundled_greedy_gives_the_torch_tokens_for_512_tokens(bundled) -> None:
    torch_gen, onnx_gen = bundled
    assert onnx_gen.backend.name == "onnx"
    cfg = GenerationConfig(search="greedy", notes=100_000, stop_at_eos=False)
    with torch.inference_mode():
        ids = [sample(g.model, g.tokenizer, [1, 0], cfg, stop_after(512),
                      decoder=g.backend.decoder(g.model)).ids for g in bundled]  # fmt: skip
    assert len(ids[0]) >= 512 and ids[0] == ids[1]


def test_bundled_seeds_reproduce_within_the_backend_and_the_record_says_which(
    bundled, tmp_path: Path
) -> None:
    _, onnx_gen = bundled
    a, b = (onnx_gen.generate(notes=24, search="top_p", seed=3) for _ in range(2))
    assert a.ids == b.ids and a.backend == "onnx"
    out = tmp_path / "x.mid"
    assert main(["generate", "--notes", "16", "--backend", "onnx", "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["backend"] == "onnx"
    again = tmp_path / "again.mid"
    assert main(["generate", "--replay", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    save_checkpoint(tmp_path / "ck", tiny_model("tiny-16"), TOK)  # both graphs
    return tmp_path / "ck"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda a: a.graph.write_bytes(a.graph.read_bytes()[:1000]), "truncated"),
        (lambda a: a.fused.write_bytes(a.fused.read_bytes()[:1000]), "truncated"),
        (lambda a: a.fused.unlink(), "unreadable"),
        (lambda a: _edit_meta(a, checksum="0123456789abcdef"), "another checkpoint"),
        (lambda a: _edit_meta(a, format=0), "stale"),
        (lambda a: a.meta.write_text("{not json"), "unreadable"),
    ],
)
def test_a_damaged_or_foreign_export_is_rebuilt_with_a_notice(
    tiny_checkpoint: Path, step_cache_dir: Path, capsys, damage, reason: str
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    artifact = StepArtifact(ckpt.checksum, step_cache_dir)
    artifact.ensure(ckpt.model)
    assert artifact.problem(ckpt.model.cfg) is None
    damage(artifact)
    assert reason in (artifact.problem(ckpt.model.cfg) or "")
    capsys.readouterr()
    gen = Generator.from_pretrained(tiny_checkpoint, backend="onnx")
    assert gen.generate(notes=8, search="greedy").backend == "onnx"
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and reason in notice[0] and "rebuilding" in notice[0]
    assert artifact.problem(ckpt.model.cfg) is None


def _edit_meta(artifact: StepArtifact, **changes: object) -> None:
    meta = json.loads(artifact.meta.read_text())
    artifact.meta.write_text(json.dumps({**meta, **changes}))


def test_auto_decodes_with_torch_until_the_export_exists(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNESMITH_CACHE_DIR", str(tmp_path / "own-cache"))  # none built yet
    assert Generator.from_pretrained(tiny_checkpoint).generate(notes=4).backend == "torch"
    Generator.from_pretrained(tiny_checkpoint, backend="onnx").generate(notes=4)
    assert Generator.from_pretrained(tiny_checkpoint).generate(notes=4).backend == "onnx"


def test_a_bad_backend_exits_2_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    out = str(tmp_path / "x.mid")
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--backend", "bogus", "--out", out])
    assert exc.value.code == 2
    monkeypatch.setattr(backend_names, "onnxruntime_available", lambda: False)
    capsys.readouterr()
    assert main(["generate", "--backend", "onnx", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--backend" in err[0] and "onnxruntime" in err[0]
    assert Generator.from_pretrained(backend="auto").backend.name == "torch"


def test_auto_keeps_the_torch_step_for_beam_search() -> None:
    """Beam rows batch better on the torch step (benchmarks.generation): auto uses it there."""
    tok = PairTokenizer()
    model = Transformer(preset("tiny", tok.vocab_size, context=64), pad_id=tok.pad_id)
    gen = Generator(model, tok)
    gen._backend = backends.StepBackend("onnx", session=object())  # as if the export were cached
    assert gen._step(GenerationConfig(search="beam")).name == "torch"
    assert gen._step(GenerationConfig(search="top_k")).name == "onnx"
    gen.requested_backend = "onnx"  # asked for by name: honoured
    assert gen._step(GenerationConfig(search="beam")).name == "onnx"


def test_a_generation_decodes_with_two_threads_where_a_second_core_is_idle(monkeypatch) -> None:
    """``--threads``' default: a second thread nearly doubles the onnx path's speed on an idle
    machine, while on a busy one spinning threads crawl."""
    cases = (({0}, 0.0, 1), ({0, 1}, 0.3, 2), ({0, 1}, 1.2, 1), (set(range(8)), 5.0, 2),
             (set(range(8)), 7.5, 1))  # fmt: skip
    for cores, load, threads in cases:
        monkeypatch.setattr(backend_names.os, "sched_getaffinity", lambda _pid, c=cores: c)
        monkeypatch.setattr(backend_names.os, "getloadavg", lambda x=load: (x, x, x))
        assert backend_names.decode_threads() == threads
    # Where the OS tells no affinity (macOS), every core counts; without a load average
    # (Windows), the machine counts as busy.
    monkeypatch.delattr(backend_names.os, "sched_getaffinity")
    monkeypatch.setattr(backend_names.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(backend_names.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert backend_names.decode_threads() == 2
    monkeypatch.delattr(backend_names.os, "getloadavg")
    assert backend_names.decode_threads() == 1
    assert backend_names.decode_threads(3) == 3
    for bad in (0, 257, 1.5, "2", True):
        with pytest.raises(BadParameterError, match="threads"):
            backend_names.decode_threads(bad)
