"""DistributedDataParallel on the CPU: 2 gloo processes equal 1 process with the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import make_corpus
from tunesmith.data.prepare import prepare
from tunesmith.model.checkpoint import load_checkpoint
from tunesmith.training import TrainConfig, Trainer, read_metrics
from tunesmith.training.distributed import DistInfo

STEPS = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(batch_size: int) -> TrainConfig:
    # No dropout, no augmentation and one precision (``auto`` times both, and on a busy
    # machine the one-process and two-process runs could choose differently): the two
    # runs must see the same numbers.
    return TrainConfig(
        preset="tiny", seq_len=32, batch_size=batch_size, max_steps=STEPS, lr=3e-3, warmup_steps=2,
        dropout=0.0, augment_transpose=0, eval_every=3, log_every=1, sample_notes=0, tensorboard=False,
        precision="fp32",
    )  # fmt: skip


def _rank_main(rank: int, world: int, port: int, cache: str, run_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        info = DistInfo(rank=rank, world_size=world, local_rank=rank)
        trainer = Trainer(config(batch_size=4), cache, run_dir, dist=info, progress=False)
        trainer.run()
        torch.save(trainer.model.state_dict(), Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = make_corpus(tmp_path_factory.mktemp("corpus"), n_good=10, bad=False)
    out = tmp_path_factory.mktemp("cache") / "cache"
    prepare(corpus, out, tokenizer="pairs", workers=1, progress=False)
    return out


def test_two_gloo_processes_match_one(cache: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    single = Trainer(config(batch_size=8), cache, tmp_path / "one", progress=False)
    single.run()

    mp.spawn(
        _rank_main,
        args=(2, free_port(), str(cache), str(tmp_path / "two"), str(tmp_path)),
        nprocs=2,
    )
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, t in w0.items():
        assert torch.equal(t, w1[name]), f"ranks disagree on {name}"
        assert torch.allclose(t, single.model.state_dict()[name], atol=1e-5, rtol=1e-4), name
    # The logged losses (summed over ranks) match too, and only rank 0 wrote them.
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [(r["step"], r["split"]) for r in one] == [(r["step"], r["split"]) for r in two]
    assert [r["loss"] for r in one] == pytest.approx([r["loss"] for r in two], rel=1e-5)
    assert [r["tokens"] for r in one] == [r["tokens"] for r in two]
    saved = load_checkpoint(tmp_path / "two" / "last")
    for name, t in saved.model.state_dict().items():
        assert torch.equal(t, w0[name]), name


def test_torchrun_command_line(cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "tunesmith.cli.main", "train", str(cache), "--out", str(run),
        "--preset", "tiny", "--seq-len", "32", "--batch-size", "2", "--max-steps", "3",
        "--eval-every", "3", "--sample-notes", "0", "--threads", "1", "--quiet", "--no-tensorboard",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[:6000]
    assert done.stdout.count("trained 3 steps") == 1  # only rank 0 reports
    state = torch.load(run / "last" / "train_state.pt", weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert [r["tokens"] for r in read_metrics(run) if r["split"] == "train"][-1] == 3 * 2 * 2 * 32
    # A resume under torchrun restores each rank's RNG stream.
    cmd[cmd.index("--max-steps") + 1] = "4"
    cmd[cmd.index("--master-port") + 1] = str(free_port())
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[:6000]
