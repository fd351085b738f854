"""The pieces of one training step and one evaluation, free of files and logging."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from tunesmith.training.distributed import DistInfo, all_sum
from tunesmith.training.metrics import token_stats
from tunesmith.training.precision import autocast

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def collate(dataset: Dataset, indices: list[int], device: torch.device) -> Batch:
    """Stack the windows at ``indices`` into ``(B, T)`` inputs, targets and positions in the
    bar (``None`` unless the dataset gives them: ``(input, target, positions)`` items)."""
    items = [dataset[i] for i in indices]
    x, y, *pos = (
        torch.stack([torch.as_tensor(item[k]) for item in items]).to(device, torch.long)
        for k in range(len(items[0]))
    )
    return x, y, pos[0] if pos else None


def epoch_batches(
    n_windows: int, dist: DistInfo, batch_size: int, seed: int, epoch: int, start: int = 0
) -> Iterator[tuple[int, list[int]]]:
    """``(batch_index, window_indices)`` of this rank, from batch ``start`` of ``epoch``.

    The order is a permutation seeded by ``(seed, epoch)``, dealt out to ranks by
    :class:`DistributedSampler`: rank ``r`` of ``W`` gets every ``W``-th window, so
    step ``s`` of all ranks together covers the same windows as step ``s`` of one
    process with a ``W`` times larger batch. Skipping to ``start`` costs nothing.
    """
    sampler = DistributedSampler(
        range(n_windows),
        num_replicas=dist.world_size,
        rank=dist.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    for b in range(start, len(order) // batch_size):
        yield b, order[b * batch_size : (b + 1) * batch_size]


def steps_per_epoch(n_windows: int, world_size: int, batch_size: int) -> int:
    return (n_windows // world_size) // batch_size


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    pad_id: int,
    dist: DistInfo,
    precision: str,
    bar_pos: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and backward of one batch; returns this rank's (loss sum, correct, count).

    The loss is the mean over the non-PAD targets of *all* ranks: each rank scales
    its sum by ``world / global_count`` because DDP averages gradients over ranks.
    That makes W processes match one process with the same global batch exactly,
    even when ranks hold different numbers of PAD targets.
    """
    with autocast(x.device, precision):
        logits, _ = model(x, bar_pos=bar_pos)
    loss_sum, correct, count = token_stats(logits, y, pad_id)
    global_count = all_sum(dist, count.float()).clamp_min(1.0)
    (loss_sum * dist.world_size / global_count).backward()
    return loss_sum.detach(), correct, count


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    dist: DistInfo,
    batch_size: int,
    pad_id: int,
    precision: str,
    max_batches: int | None = None,
) -> tuple[float, float, int]:
    """Mean loss, token accuracy and target count over ``dataset`` (sharded over ranks)."""
    was_training = model.training
    model.eval()
    n = len(dataset)  # type: ignore[arg-type]
    if max_batches is not None:
        n = min(n, max_batches * batch_size * dist.world_size)
    mine = list(range(dist.rank, n, dist.world_size))
    totals = torch.zeros(3, dtype=torch.float64, device=dist.device)
    for i in range(0, len(mine), batch_size):
        x, y, bar_pos = collate(dataset, mine[i : i + batch_size], dist.device)
        with autocast(x.device, precision):
            logits, _ = model(x, bar_pos=bar_pos)
        loss_sum, correct, count = token_stats(logits, y, pad_id)
        totals += torch.stack([loss_sum.double(), correct.double(), count.double()])
    totals = all_sum(dist, totals)
    model.train(was_training)
    count = int(totals[2].item())
    if count == 0:
        return float("nan"), float("nan"), 0
    return float(totals[0] / count), float(totals[1] / count), count
