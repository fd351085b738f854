"""``--precision auto``: measured at start-up, the faster precision that keeps the loss wins."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import make_corpus
from tunesmith.cli.main import main
from tunesmith.model.checkpoint import read_config
from tunesmith.model.config import preset
from tunesmith.model.transformer import Transformer
from tunesmith.training import precision as precision_module
from tunesmith.training.distributed import DistInfo
from tunesmith.training.precision import choose_precision

TINY = [
    "--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--max-steps", "3",
    "--eval-every", "3", "--sample-notes", "0", "--threads", "1", "--quiet", "--no-tensorboard",
]  # fmt: skip


def fake_timer(seconds: dict[str, float], loss: dict[str, float]):  # noqa: ANN201 - test helper
    def timed(model, x, y, pad_id, precision, reps, bar_pos=None):  # noqa: ANN001, ANN202
        return seconds[precision], loss[precision]

    return timed


@pytest.mark.parametrize(
    ("seconds", "loss", "chosen"),
    [
        ({"fp32": 2.0, "bf16": 1.0}, {"fp32": 5.0, "bf16": 5.001}, "bf16"),  # faster, same loss
        ({"fp32": 1.0, "bf16": 10.0}, {"fp32": 5.0, "bf16": 5.0}, "fp32"),  # 10x slower
        ({"fp32": 2.0, "bf16": 1.0}, {"fp32": 5.0, "bf16": 5.5}, "fp32"),  # faster, other loss
    ],
)
def test_choice_follows_speed_and_loss(
    monkeypatch: pytest.MonkeyPatch, seconds: dict, loss: dict, chosen: str
) -> None:
    monkeypatch.setattr(precision_module, "_time_step", fake_timer(seconds, loss))
    model = Transformer(preset("tiny", 296), pad_id=0)
    x = torch.randint(4, 296, (1, 16))
    probe = choose_precision(model, x, x, 0, DistInfo())
    assert probe.chosen == chosen
    assert probe.tokens_per_s["fp32"] == pytest.approx(16 / seconds["fp32"])
    assert chosen in probe.line()


def test_probe_leaves_model_and_rng_untouched() -> None:
    torch.manual_seed(0)
    model = Transformer(preset("tiny", 296), pad_id=0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(4, 296, (2, 16))
    rng = torch.random.get_rng_state()
    probe = choose_precision(model, x, x, 0, DistInfo(), reps=1)
    assert set(probe.tokens_per_s) == {"fp32", "bf16"} and probe.chosen in ("fp32", "bf16")
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_auto_is_resolved_and_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = make_corpus(tmp_path / "corpus", n_good=6, bad=False)
    timings = {"fp32": 1.0, "bf16": 10.0}
    monkeypatch.setattr(precision_module, "_time_step", fake_timer(timings, {"fp32": 5, "bf16": 5}))
    assert main(["train", str(corpus), "--out", str(tmp_path / "run"), *TINY]) == 0
    assert "precision auto: fp32" in capsys.readouterr().out
    assert read_config(tmp_path / "run" / "last")["train"]["precision"] == "fp32"
    # A resume keeps the run's choice, even when asked for auto again.
    args = ["--resume", "--max-steps", "4", "--precision", "auto", "--quiet"]
    assert main(["train", str(corpus), "--out", str(tmp_path / "run"), *args]) == 0
    assert read_config(tmp_path / "run" / "last")["train"]["precision"] == "fp32"
