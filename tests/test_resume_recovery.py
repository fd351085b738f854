"""Resume after a kill at any moment of a checkpoint write: each intermediate folder state.

:func:`tunesmith.model.checkpoint.write_folder_atomically` writes ``.last.tmp-*``,
renames ``last`` to ``.last.old-*``, renames the temporary to ``last`` and removes
the old folder. A kill can stop it between any two of those steps; the states are
rebuilt here from the folders of runs stopped right after their step-4 and step-8
checkpoints, and ``--resume`` must then log (and end with) what an uninterrupted
run does. ``--log-every 3`` with ``--eval-every 4`` also leaves a partial loss
interval in every checkpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import make_corpus
from tunesmith.cli.main import main
from tunesmith.data.prepare import prepare
from tunesmith.training import read_metrics

ARGS = [
    "--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--lr", "3e-3", "--warmup-steps", "2",
    "--log-every", "3", "--eval-every", "4", "--eval-batches", "2", "--sample-notes", "0",
    "--dropout", "0.1", "--augment-transpose", "2", "--threads", "1", "--quiet", "--no-tensorboard",
    "--max-steps", "12",
    "--precision", "fp32",  # auto times both at start-up: two runs could choose differently
]  # fmt: skip


def train(*args: str | Path) -> int:
    return main(["train", *map(str, args)])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = make_corpus(tmp_path_factory.mktemp("corpus"), n_good=10, bad=False)
    out = tmp_path_factory.mktemp("cache") / "cache"
    prepare(corpus, out, tokenizer="pairs", workers=1, progress=False)
    return out


def stopped_run(cache: Path, run: Path, stop_at_call: int) -> Path:
    """A run stopped as its step ``stop_at_call`` begins (Ctrl-C: only whole writes on disk)."""
    from tunesmith.training import trainer

    real_step, calls = trainer.train_step, {"n": 0}

    def stops(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == stop_at_call:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "train_step", stops)
        assert train(cache, "--out", run, *ARGS) == 130
    return run


@pytest.fixture(scope="module")
def runs(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    assert train(cache, "--out", root / "whole", *ARGS) == 0
    return {
        "whole": root / "whole",
        "step3": stopped_run(cache, root / "step3", 4),  # no checkpoint yet
        "step4": stopped_run(cache, root / "step4", 5),
        "step8": stopped_run(cache, root / "step8", 9),
    }


def records(run: Path) -> list[tuple[int, str, float, float]]:
    return [(r["step"], r["split"], r["loss"], r["acc"]) for r in read_metrics(run)]


def half_written(src: Path, dest: Path) -> None:
    """A copy of checkpoint ``src`` killed mid-write: the weights cut short, no config yet."""
    shutil.copytree(src, dest)
    weights = dest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (dest / "config.json").unlink()


def writing_tmp(run: Path, runs: dict[str, Path]) -> None:
    """Killed while the step-8 ``.last.tmp-*`` was being written: ``last`` is step 4."""
    shutil.rmtree(run / "last")
    shutil.copytree(runs["step4"] / "last", run / "last")
    half_written(runs["step8"] / "last", run / ".last.tmp-k1")


def between_renames(run: Path, runs: dict[str, Path]) -> None:
    """Killed between the two renames: no ``last``, the step-4 one set aside."""
    (run / "last").rename(run / ".last.tmp-k2")
    shutil.copytree(runs["step4"] / "last", run / ".last.old-4242")


def removing_old(run: Path, runs: dict[str, Path]) -> None:
    """Killed while the set-aside step-4 folder was being removed."""
    shutil.copytree(runs["step4"] / "last", run / ".last.old-4242")
    (run / ".last.old-4242" / "model.safetensors").unlink()


def best_between_renames(run: Path, runs: dict[str, Path]) -> None:
    """Killed between the renames of ``best`` (written before ``last``): ``last`` is step 4."""
    writing_tmp(run, runs)
    shutil.rmtree(run / ".last.tmp-k1")
    (run / "best").rename(run / ".best.old-77")
    half_written(runs["step8"] / "best", run / ".best.tmp-k3")


STATES: dict[str, Callable[[Path, dict[str, Path]], None]] = {
    "writing_tmp": writing_tmp,
    "between_renames": between_renames,
    "removing_old": removing_old,
    "best_between_renames": best_between_renames,
}


@pytest.mark.parametrize("state", list(STATES))
def test_resume_after_a_kill_mid_swap(
    state: str, runs: dict[str, Path], tmp_path: Path, cache: Path
) -> None:
    run = tmp_path / "r"
    shutil.copytree(runs["step8"], run)
    STATES[state](run, runs)
    assert train(cache, "--out", run, "--resume", "--quiet") == 0
    assert records(run) == records(runs["whole"])
    for name in ("last", "best"):
        assert (run / name / "model.safetensors").read_bytes() == (
            runs["whole"] / name / "model.safetensors"
        ).read_bytes(), name
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("recorded_config", [True, False])
def test_resume_before_the_first_checkpoint_starts_afresh(
    recorded_config: bool, runs: dict[str, Path], tmp_path: Path, cache: Path
) -> None:
    run = tmp_path / "r"
    shutil.copytree(runs["step3"], run)
    assert not (run / "last").exists()
    half_written(runs["step4"] / "last", run / ".last.tmp-k4")
    half_written(runs["step4"] / "best", run / ".best.tmp-k5")
    options: list[str] = ["--quiet"]
    if not recorded_config:  # a run folder from before the config was recorded
        (run / "train_config.json").unlink()
        options = ARGS
    assert train(cache, "--out", run, "--resume", *options) == 0
    assert records(run) == records(runs["whole"])
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


def test_resume_refuses_a_folder_that_is_not_a_run(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("mine")
    assert train(cache, "--out", tmp_path / "r", "--resume", "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert "no resumable run" in err and "\n" not in err
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["keep.txt"]


def test_a_run_killed_before_its_first_checkpoint_hints_at_resume(
    runs: dict[str, Path], tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(runs["step3"], tmp_path / "r")
    assert train(cache, "--out", tmp_path / "r", *ARGS) == 2
    assert "add --resume" in capsys.readouterr().err
