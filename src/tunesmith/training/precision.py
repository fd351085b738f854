"""``--precision auto``: measure fp32 and bf16 training steps on this machine and keep the faster.

Whether bf16 autocast pays on a CPU depends on the CPU (with AMX or AVX512-BF16
it can be twice as fast as fp32; without, emulated bf16 is many times slower),
so ``auto`` times a short forward and backward pass in both precisions at
start-up and keeps bf16 only when it is faster *and* its loss on the same batch
matches fp32's. On a GPU that supports bf16, ``auto`` is bf16 without measuring.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from tunesmith.training.distributed import DistInfo, all_sum
from tunesmith.training.metrics import token_stats

# bf16's loss on the probe batch may differ from fp32's by this much (nats/token):
# more means its rounding changes what the model learns, whatever its speed.
LOSS_TOLERANCE = 0.02


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """bf16 autocast for ``precision="bf16"``; fp32 (no autocast) otherwise.

    ``auto`` is resolved by :func:`choose_precision` before training starts; an
    unresolved ``auto`` here means fp32 on a CPU and bf16 on a capable GPU.
    """
    if precision == "bf16" or (precision == "auto" and _gpu_bf16(device)):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _gpu_bf16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class PrecisionProbe:
    """What ``auto`` measured: tokens/s and the probe batch's loss in each precision."""

    chosen: str
    tokens_per_s: dict[str, float]
    loss: dict[str, float]

    def line(self) -> str:
        speeds = ", ".join(f"{p} {v:,.0f} tokens/s" for p, v in self.tokens_per_s.items())
        if not speeds:
            return f"precision auto: {self.chosen} (a GPU with bf16 support)"
        gap = abs(self.loss["bf16"] - self.loss["fp32"])
        return f"precision auto: {self.chosen} ({speeds}; loss gap {gap:.4f})"


def _time_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    pad_id: int,
    precision: str,
    reps: int,
    bar_pos: torch.Tensor | None,
) -> tuple[float, float]:
    """Seconds of the fastest of ``reps`` forward+backward passes, and the batch's mean loss."""
    best, loss = float("inf"), float("nan")
    for _ in range(reps + 1):  # the first pass pays for allocations and kernel selection
        t0 = time.perf_counter()
        with autocast(x.device, precision):
            logits, _ = model(x, bar_pos=bar_pos)
        loss_sum, _, count = token_stats(logits, y, pad_id)
        (loss_sum / count.clamp_min(1)).backward()
        elapsed = time.perf_counter() - t0
        best, loss = min(best, elapsed), float(loss_sum.detach() / count.clamp_min(1))
    model.zero_grad(set_to_none=True)
    return best, loss


def choose_precision(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    pad_id: int,
    dist: DistInfo,
    reps: int = 2,
    bar_pos: torch.Tensor | None = None,
) -> PrecisionProbe:
    """Time fp32 and bf16 on the probe batch ``(x, y)`` and pick the faster that keeps the loss.

    The model runs in eval mode (no dropout, so no random numbers are drawn and
    the run stays reproducible) and its gradients are cleared afterwards. Every
    process measures; the sums decide, so all ranks choose the same. ``bar_pos``: the
    batch's positions in the bar, for a model that takes them.
    """
    if _gpu_bf16(x.device):
        return PrecisionProbe("bf16", {}, {})
    was_training = model.training
    model.eval()
    try:
        measured = {p: _time_step(model, x, y, pad_id, p, reps, bar_pos) for p in ("fp32", "bf16")}
    finally:
        model.train(was_training)
    seconds = all_sum(dist, torch.tensor([measured["fp32"][0], measured["bf16"][0]]))
    tokens = x.numel() * dist.world_size
    speed = {"fp32": tokens / float(seconds[0]), "bf16": tokens / float(seconds[1])}
    loss = {p: m[1] for p, m in measured.items()}
    keeps_loss = abs(loss["bf16"] - loss["fp32"]) <= LOSS_TOLERANCE
    chosen = "bf16" if keeps_loss and speed["bf16"] > speed["fp32"] else "fp32"
    return PrecisionProbe(chosen, speed, loss)
