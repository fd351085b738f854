"""The training pipeline on a tiny synthetic corpus: learning, exact resume, refusals, bad input."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, make_corpus
from tunesmith.cli.main import main
from tunesmith.data.prepare import prepare
from tunesmith.errors import TunesmithError
from tunesmith.model.checkpoint import load_checkpoint, read_config
from tunesmith.training import TrainConfig, Trainer, read_metrics
from tunesmith.training import loop as loop_module
from tunesmith.training.optim import CosineSchedule, NoamSchedule

# Small enough for a few seconds a run; dropout and augmentation on, so that the
# exact-resume test covers the RNG states and the data position.
TINY = [
    "--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--lr", "3e-3", "--warmup-steps", "2",
    "--log-every", "1", "--eval-every", "4", "--eval-batches", "2", "--sample-notes", "8",
    "--dropout", "0.1", "--augment-transpose", "2", "--threads", "1", "--quiet", "--no-tensorboard",
    "--precision", "fp32",  # auto times both at start-up: two runs could choose differently
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_good=10, bad=False)


@pytest.fixture(scope="module")
def cache(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "cache"
    prepare(corpus, out, tokenizer="pairs", workers=1, progress=False)
    return out


def train(*args: str | Path) -> int:
    return main(["train", *map(str, args)])


def losses(run_dir: Path) -> list[tuple[int, str, float]]:
    return [(r["step"], r["split"], r["loss"]) for r in read_metrics(run_dir)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, needle: str) -> None:
    assert_one_line_error(capsys, code, needle, prefix="tunesmith train: error:")


def test_loss_decreases_on_tiny_overfit(cache: Path, tmp_path: Path) -> None:
    assert train(cache, "--out", tmp_path / "r", *TINY, "--max-steps", "40", "--dropout", "0") == 0
    rows = [r for r in read_metrics(tmp_path / "r") if r["split"] == "train"]
    first, last = rows[0]["loss"], sum(r["loss"] for r in rows[-5:]) / 5
    assert last < first - 1.0, (first, last)
    assert all(0 <= r["acc"] <= 1 for r in rows)
    for name in ("best", "last"):
        ckpt = load_checkpoint(tmp_path / "r" / name)
        assert ckpt.config["train"]["max_steps"] == 40
        assert ckpt.config["train"]["preset"] == "tiny"
        assert ckpt.config["data"]["fingerprint"]
    assert (tmp_path / "r" / "last" / "train_state.pt").is_file()
    assert not (tmp_path / "r" / "best" / "train_state.pt").exists()
    assert sorted(p.name for p in (tmp_path / "r" / "samples").iterdir())[0] == "step_0000004.mid"
    assert (tmp_path / "r" / "curves.png").stat().st_size > 1000


def test_resume_equals_uninterrupted(cache: Path, tmp_path: Path) -> None:
    common = [*TINY, "--decay-steps", "14"]
    assert train(cache, "--out", tmp_path / "a", *common, "--max-steps", "14") == 0
    assert train(cache, "--out", tmp_path / "b", *common, "--max-steps", "8") == 0
    assert train(cache, "--out", tmp_path / "b", "--resume", "--max-steps", "14", "--quiet") == 0
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    a, b = load_checkpoint(tmp_path / "a" / "last"), load_checkpoint(tmp_path / "b" / "last")
    for (name, x), y in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(x, y), name


def test_killed_between_checkpoints_resumes_exactly(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = [*TINY, "--max-steps", "12"]
    assert train(cache, "--out", tmp_path / "a", *common) == 0
    real_step, calls = loop_module.train_step, {"n": 0}

    def dies_at_step_7(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 7:  # the checkpoint of step 4 is the last one on disk
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr("tunesmith.training.trainer.train_step", dies_at_step_7)
    assert train(cache, "--out", tmp_path / "b", *common) == 130
    assert max(r["step"] for r in read_metrics(tmp_path / "b")) == 6  # logged past the checkpoint
    monkeypatch.setattr("tunesmith.training.trainer.train_step", real_step)
    assert train(cache, "--out", tmp_path / "b", "--resume", "--quiet") == 0
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_resume_refuses_another_config(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    assert train(cache, "--out", run, *TINY, "--max-steps", "4") == 0
    before = snapshot(run)
    capsys.readouterr()
    one_line_error(
        capsys,
        train(cache, "--out", run, "--resume", "--lr", "1e-2", "--quiet"),
        "lr: 0.003 != 0.01",
    )
    one_line_error(
        capsys, train(cache, "--out", run, "--resume", "--preset", "seed", "--quiet"), "preset"
    )
    assert snapshot(run) == before
    # A fresh run never writes into a non-empty folder.
    one_line_error(capsys, train(cache, "--out", run, *TINY, "--max-steps", "4"), "add --resume")
    assert snapshot(run) == before
    # Nothing to resume.
    one_line_error(
        capsys, train(cache, "--out", tmp_path / "new", "--resume", "--quiet"), "no resumable run"
    )
    assert not (tmp_path / "new").exists()


def test_checkpoint_write_killed_keeps_the_previous_one(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "r"
    assert train(cache, "--out", run, *TINY, "--max-steps", "4") == 0
    before = snapshot(run / "last")

    def dies_mid_write(obj: object, path: object, *args: object, **kwargs: object) -> None:
        Path(str(path)).write_bytes(b"half a file")
        raise KeyboardInterrupt  # a kill while train_state.pt is being written

    monkeypatch.setattr("tunesmith.model.checkpoint.torch.save", dies_mid_write)
    assert train(cache, "--out", run, "--resume", "--max-steps", "8", "--quiet") == 130
    assert snapshot(run / "last") == before  # whole, and still the step-4 checkpoint
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary left behind
    monkeypatch.undo()
    assert train(cache, "--out", run, "--resume", "--max-steps", "8", "--quiet") == 0
    assert read_config(run / "last")["metrics"]["step"] == 8


def test_init_from_fine_tunes(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        train(cache, "--out", tmp_path / "base", *TINY, "--max-steps", "30", "--dropout", "0") == 0
    )
    base_loss = [r for r in read_metrics(tmp_path / "base") if r["split"] == "train"][-1]["loss"]
    ft = tmp_path / "ft"
    args = ["--seq-len", "32", "--batch-size", "4", "--max-steps", "2", "--quiet", "--threads", "1"]
    assert train(cache, "--out", ft, "--init-from", tmp_path / "base" / "best", *args) == 0
    first = read_metrics(ft)[0]["loss"]
    assert first < base_loss + 0.5  # starts where the base model was, not from scratch (~5.7)
    cfg = read_config(ft / "last")
    assert cfg["train"]["init_from"] == str(tmp_path / "base" / "best")
    assert cfg["model"] == read_config(tmp_path / "base" / "best")["model"]
    capsys.readouterr()
    code = train(
        cache,
        "--out",
        tmp_path / "x",
        "--init-from",
        tmp_path / "base" / "best",
        "--preset",
        "tiny",
    )
    one_line_error(capsys, code, "exclude each other")


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda d: d.mkdir(), "not a tunesmith checkpoint"),
        (
            lambda d: (d.mkdir(), (d / "config.json").write_text("{not json")),
            "unreadable config.json",
        ),
        (
            lambda d: (d.mkdir(), (d / "config.json").write_text('{"format": "other"}')),
            "not a tunesmith checkpoint",
        ),
    ],
)
def test_init_from_bad_checkpoint(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make, needle: str
) -> None:
    make(tmp_path / "ckpt")
    code = train(
        cache, "--out", tmp_path / "r", "--init-from", tmp_path / "ckpt", "--max-steps", "2"
    )
    one_line_error(capsys, code, needle)
    assert not (tmp_path / "r").exists()


def test_init_from_corrupt_weights(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(cache, "--out", tmp_path / "base", *TINY, "--max-steps", "2") == 0
    (tmp_path / "base" / "best" / "model.safetensors").write_bytes(b"\x00" * 100)
    capsys.readouterr()
    code = train(
        cache,
        "--out",
        tmp_path / "r",
        "--init-from",
        tmp_path / "base" / "best",
        "--max-steps",
        "2",
    )
    one_line_error(capsys, code, "corrupt model.safetensors")
    assert not (tmp_path / "r").exists()


def test_bad_input_one_line_exit_2(
    cache: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    one_line_error(
        capsys, train(cache, "--out", out, "--max-steps", "0"), "--max-steps must be positive"
    )
    (tmp_path / "empty").mkdir()
    one_line_error(
        capsys,
        train(tmp_path / "empty", "--out", out, "--max-steps", "2"),
        "no .mid or .midi files",
    )
    one_line_error(
        capsys, train(tmp_path / "nowhere", "--out", out, "--max-steps", "2"), "no such data folder"
    )
    code = train(cache, "--out", out, "--tokenizer", "remi", "--max-steps", "2")
    one_line_error(capsys, code, "made with the 'pairs' tokenizer, not 'remi'")
    one_line_error(
        capsys, train(cache, "--out", out, "--max-steps", "2", "--epochs", "1"), "not both"
    )
    one_line_error(
        capsys, train(cache, "--out", out, "--preset", "huge", "--max-steps", "2"), "unknown preset"
    )
    if importlib.util.find_spec("wandb") is None:
        one_line_error(
            capsys, train(cache, "--out", out, "--max-steps", "2", "--wandb"), "pip install wandb"
        )
    assert not out.exists()


def test_midi_folder_is_prepared_into_the_run(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    assert train(corpus, "--out", run, *TINY, "--max-steps", "2") == 0
    assert (run / "cache" / "meta.json").is_file()
    data = read_config(run / "last")["data"]
    assert data["source"] == str(corpus.resolve()) and data["tokenizer"] == "pairs"
    assert (
        train(corpus, "--out", run, "--resume", "--max-steps", "3", "--quiet") == 0
    )  # reuses the cache


def test_config_file_and_epochs(cache: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {"preset": "tiny", "seq_len": 32, "batch_size": 4, "epochs": 1, "sample_notes": 0}
        )
    )
    assert (
        train(cache, "--out", tmp_path / "r", "--config", cfg, "--quiet", "--eval-every", "1000")
        == 0
    )
    saved = TrainConfig.from_dict(read_config(tmp_path / "r" / "last")["train"])
    trainer_steps = saved.max_steps
    assert saved.epochs == 1 and trainer_steps and trainer_steps > 1
    assert read_config(tmp_path / "r" / "last")["metrics"]["step"] == trainer_steps


def test_trainer_api_checks_before_writing(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("mine")
    with pytest.raises(TunesmithError, match="not empty"):
        Trainer(
            TrainConfig(preset="tiny", seq_len=32, batch_size=4, max_steps=1), cache, tmp_path / "r"
        )
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["keep.txt"]


def test_schedules() -> None:
    cos = CosineSchedule(warmup=10, decay_steps=110, min_ratio=0.1)
    assert cos(0) == pytest.approx(0.1) and cos(9) == pytest.approx(1.0)
    assert (
        cos(59) == pytest.approx(0.55)
        and cos(109) == pytest.approx(0.1)
        and cos(500) == pytest.approx(0.1)
    )
    noam = NoamSchedule(d_model=256, warmup=4000)
    peak = noam(3999)
    assert peak == pytest.approx(256**-0.5 * 4000**-0.5)
    assert noam(1999) < peak and noam(15999) == pytest.approx(peak / 2)
    assert math.isclose(max(noam(s) for s in range(0, 8000, 7)), peak, rel_tol=1e-3)


def test_noam_uses_the_original_adam(cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    assert (
        train(cache, "--out", run, *TINY, "--max-steps", "2", "--schedule", "noam", "--lr", "1")
        == 0
    )
    state = torch.load(run / "last" / "train_state.pt", weights_only=False)
    group = state["optimizer"]["param_groups"][0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9 and group["weight_decay"] == 0
    assert read_config(run / "last")["train"]["warmup_steps"] == 2


def test_plot_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"step": s, "split": "train", "loss": 5 - s / 10, "acc": s / 100, "tokens": 64 * s}
        for s in range(1, 21)
    ]
    rows += [
        {"step": s, "split": "val", "loss": 5 - s / 12, "acc": s / 120, "tokens": 64 * s}
        for s in (10, 20)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    assert main(["plot", str(run)]) == 0
    png = (run / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png"), "--x", "tokens"]) == 0
    assert (tmp_path / "c.png").is_file()
    capsys.readouterr()
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no metrics.jsonl" in err and "\n" not in err


def test_sample_keeps_the_global_rng_and_the_mode() -> None:
    from tunesmith.model import Transformer, preset
    from tunesmith.tokenization import PairTokenizer
    from tunesmith.training.sample import sample_score

    tok = PairTokenizer()
    model = Transformer(preset("tiny", tok.vocab_size), pad_id=tok.pad_id).train()
    before = torch.get_rng_state()
    sample_score(model, tok, notes=8, seed=1)
    assert torch.equal(before, torch.get_rng_state()) and model.training


def test_tensorboard_writer_gets_every_record(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    calls: list[tuple[str, float, int]] = []

    class FakeWriter:  # stands in for tensorboard, which this machine does not have
        def __init__(self, log_dir: str) -> None:
            Path(log_dir).mkdir(parents=True)

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            calls.append((tag, value, step))

        def close(self) -> None:
            calls.append(("closed", 0.0, 0))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    args = [*TINY, "--max-steps", "4", "--sample-notes", "0"]
    args.remove("--no-tensorboard")
    assert train(cache, "--out", tmp_path / "r", *args) == 0
    tags = {tag for tag, _, _ in calls}
    assert {"train/loss", "train/acc", "train/lr", "val/loss", "val/acc", "closed"} <= tags
    assert [s for tag, _, s in calls if tag == "train/loss"] == [1, 2, 3, 4]
    assert (tmp_path / "r" / "tensorboard").is_dir()


def test_sigkill_then_resume_equals_uninterrupted(cache: Path, tmp_path: Path) -> None:
    """A real ``kill -9`` at an arbitrary moment, then ``--resume``."""
    import os
    import signal
    import subprocess
    import sys
    import time

    common = [*map(str, TINY), "--max-steps", "40", "--decay-steps", "40"]
    assert train(cache, "--out", tmp_path / "a", *common) == 0
    run = tmp_path / "b"
    cmd = [sys.executable, "-m", "tunesmith.cli.main", "train", str(cache), "--out", str(run)]
    proc = subprocess.Popen([*cmd, *common], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if read_config(run / "last")["metrics"]["step"] >= 12:
                    break
            except TunesmithError:  # not written yet, or caught between its two renames
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert train(cache, "--out", run, "--resume", "--quiet") == 0
    assert losses(tmp_path / "a") == losses(run)
