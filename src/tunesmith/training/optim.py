"""Optimizers and learning-rate schedules: AdamW + warmup + cosine, or the original's Noam."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tunesmith.training.config import TrainConfig


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warmup to 1, cosine decay to ``min_ratio`` at ``decay_steps``, flat after."""

    warmup: int
    decay_steps: int
    min_ratio: float

    def __call__(self, step: int) -> float:
        # ``step`` counts optimizer steps already taken; the first step uses step=0.
        s = step + 1
        if s <= self.warmup:
            return s / max(1, self.warmup)
        span = max(1, self.decay_steps - self.warmup)
        t = min(1.0, (s - self.warmup) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


@dataclass(frozen=True)
class NoamSchedule:
    """The original's ``d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)``."""

    d_model: int
    warmup: int

    def __call__(self, step: int) -> float:
        s = step + 1
        return self.d_model**-0.5 * min(s**-0.5, s * max(1, self.warmup) ** -1.5)


def lr_factor(cfg: TrainConfig, d_model: int) -> CosineSchedule | NoamSchedule:
    """The schedule's multiplier of ``cfg.lr`` at each step (``cfg`` must be resolved)."""
    assert cfg.warmup_steps is not None and cfg.decay_steps is not None, "resolve the config first"
    if cfg.schedule == "noam":
        return NoamSchedule(d_model, cfg.warmup_steps)
    return CosineSchedule(cfg.warmup_steps, cfg.decay_steps, cfg.min_lr_ratio)


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, d_model: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with weight decay on matrices only (cosine), or the original's Adam (noam)."""
    assert cfg.lr is not None, "resolve the config first"
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.schedule == "noam":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            params, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9
        )
    else:
        # Norm gains and biases are not decayed: shrinking them only fights the norm.
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, d_model))
    return opt, sched
