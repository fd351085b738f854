"""The torch-free onnx path: the fused graph over numpy storage and the numpy sampler.

Its logits are the reference forward's (within 1e-3) past the context, greedy gives the
torch tokens, a seed gives the same bytes run after run and replays from its record;
a record of the torch sampler on onnx (before the numpy one) replays byte for byte;
and a generation on a cached export never imports torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from test_fast_decode import TOK, onnx_step, stop_after, tiny_model  # noqa: E402
from tunesmith.cli.main import main  # noqa: E402
from tunesmith.generation.config import GenerationConfig  # noqa: E402
from tunesmith.generation.fused_window import FusedWindow  # noqa: E402
from tunesmith.generation.generator import Generator  # noqa: E402
from tunesmith.generation.search import sample  # noqa: E402
from tunesmith.model.checkpoint import save_checkpoint  # noqa: E402
from tunesmith.model.decode import Decoder  # noqa: E402

SRC = str(Path(__file__).resolve().parent.parent / "src")


@pytest.fixture(scope="module", params=["tiny-original", "tiny-16"])
def fusable(request: pytest.FixtureRequest):  # noqa: ANN201
    """A tiny model the fused graph runs, and its onnx backend."""
    model = tiny_model(request.param)
    return model, onnx_step(model)


def test_fused_window_logits_match_the_reference_forward_past_the_context(fusable) -> None:
    model, step = fusable
    window = FusedWindow(step.fused_decoder(model.cfg), [1, 0, 60, 140])
    rng = np.random.default_rng(1)
    for _ in range(150):  # past the context of 64: the window slides, re-fed in one prefill
        window.push(rng.integers(4, 290, size=1))
        got = torch.from_numpy(window.logits())
        with torch.inference_mode():
            ref, _ = model(torch.tensor([window.ids[window.start :]]))
        torch.testing.assert_close(got, ref[:, -1], atol=1e-3, rtol=0)
    assert window.start > 0


def test_a_prefill_computes_what_steps_token_by_token_do(fusable) -> None:
    """One run over S tokens writes the keys and values S steps write, and the same logits."""
    from tunesmith.model.fused_step import new_storage

    model, step = fusable
    fused = step.fused_decoder(model.cfg).step
    tokens = np.random.default_rng(2).integers(4, 290, size=40)
    one_run, stepped = new_storage(model.cfg), new_storage(model.cfg)
    got = fused.prefill(tokens, one_run)
    for past, token in enumerate(tokens):
        want = fused.run(int(token), stepped, past)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(one_run[..., :40, :], stepped[..., :40, :], atol=1e-4, rtol=0)
    after = [fused.run(7, kv, 40) for kv in (one_run, stepped)]
    np.testing.assert_allclose(after[0], after[1], atol=1e-4, rtol=0)


def test_a_bar_model_on_the_numpy_path_matches_the_reference_forward() -> None:
    """Positions in the bar reach the fused graph, through the prompt, steps and slides."""
    from test_bar_positions import bar_model
    from tunesmith.tokenization.bar_clock import bar_positions

    model = bar_model("tiny-16")
    window = FusedWindow(onnx_step(model).fused_decoder(model.cfg), [1, 0, 60, 140, 4, 130])
    rng = np.random.default_rng(2)
    # A note (pitch, duration), then an advance (SEP, duration): time moves by 1-8 steps.
    kinds = [(4, 132), (133, 141), (3, 4), (133, 141)]
    for t in range(120):
        window.push(rng.integers(*kinds[t % 4], size=1))
        got = torch.from_numpy(window.logits())
        pos = torch.from_numpy(bar_positions(window.ids).astype(np.int64))[None, window.start :]
        with torch.inference_mode():
            ref, _ = model(torch.tensor([window.ids[window.start :]]), bar_pos=pos)
        torch.testing.assert_close(got, ref[:, -1], atol=1e-3, rtol=0)
    assert window.start > 0 and len(set(window.pos)) > 4


def test_greedy_on_the_numpy_path_gives_the_torch_tokens(fusable) -> None:
    model, step = fusable
    cfg = GenerationConfig(search="greedy", notes=100_000, stop_at_eos=False)
    with torch.inference_mode():
        ref = sample(model, TOK, [1, 0], cfg, stop_after(512), decoder=Decoder(model))
    got = sample(None, TOK, [1, 0], cfg, stop_after(512), step.fused_decoder(model.cfg),
                 sampler="numpy")  # fmt: skip
    assert len(ref.ids) >= 512 and got.ids == ref.ids


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    save_checkpoint(tmp_path / "ck", tiny_model("tiny-16"), TOK)
    built = Generator.from_pretrained(tmp_path / "ck", backend="onnx").backend  # the export
    assert built.name == "onnx"
    return tmp_path / "ck"


def test_a_seed_gives_the_same_bytes_on_onnx_and_replays(checkpoint: Path, tmp_path: Path) -> None:
    runs = [tmp_path / f"{name}.mid" for name in ("a", "b")]
    for out in runs:
        args = ["generate", "--model", str(checkpoint), "--notes", "24", "--seed", "5"]
        assert main([*args, "--search", "top_p", "--out", str(out)]) == 0
    assert runs[0].read_bytes() == runs[1].read_bytes()
    record = json.loads(runs[0].with_suffix(".json").read_text())
    assert record["backend"] == "onnx" and record["sampler"] == "numpy"
    again = tmp_path / "again.mid"
    assert (
        main(["generate", "--replay", str(runs[0].with_suffix(".json")), "--out", str(again)]) == 0
    )
    assert again.read_bytes() == runs[0].read_bytes()


def test_generations_at_once_in_threads_give_each_seed_its_own_music(checkpoint: Path) -> None:
    """The web app decodes `--workers` generations at once on one Generator: each seed's
    notes are those it gets alone, on the numpy path and on the torch step (beam)."""
    from concurrent.futures import ThreadPoolExecutor

    gen = Generator.from_pretrained(checkpoint, backend="auto")
    calls = [dict(search=s, seed=k, notes=24) for s in ("top_k", "top_p", "beam") for k in (1, 2)]
    alone = [gen.generate(**c).grid.tolist() for c in calls]
    with ThreadPoolExecutor(3) as pool:
        at_once = list(pool.map(lambda c: gen.generate(**c).grid.tolist(), calls * 2))
    assert at_once == alone * 2


def test_an_onnx_record_of_the_torch_sampler_replays_byte_for_byte(
    checkpoint: Path, tmp_path: Path
) -> None:
    """Records made before the numpy sampler name no sampler: they replay on torch's."""
    gen = Generator.from_pretrained(checkpoint, backend="onnx")
    gen.sampler = "torch"
    old = gen.generate(notes=24, search="top_k", seed=9)
    assert old.backend == "onnx" and old.sampler == "torch"
    out = tmp_path / "old.mid"
    old.score.dump_midi(str(out))
    record = {"tool": "tunesmith generate", "params": old.config.to_dict(), "backend": "onnx",
              "model_path": str(checkpoint), "prompt_notes": None}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(record))
    again = tmp_path / "again.mid"
    assert main(["generate", "--replay", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    from tunesmith.tokenization.midi_io import load_midi

    assert load_midi(again).dumps_midi() == load_midi(out).dumps_midi()
    assert "sampler" not in json.loads(again.with_suffix(".json").read_text())


def test_generate_on_a_cached_export_never_imports_torch(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.mid"
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torch' in sys.modules, file=sys.stderr))\n"
        "from tunesmith.cli.main import main\n"
        f"sys.exit(main(['generate', '--notes', '16', '--backend', 'onnx', '--model', "
        f"{str(checkpoint)!r}, '--out', {str(out)!r}]))"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1] == "False"  # torch never imported
    from tunesmith.tokenization.midi_io import load_midi

    record = json.loads(out.with_suffix(".json").read_text())
    assert record["sampler"] == "numpy" and record["backend"] == "onnx"
    assert len(load_midi(out).tracks[0].notes) == record["new_notes"] > 0  # EOS may end it
