"""Held-out loss, perplexity and token accuracy of a model on a split's files.

Each file's ids (with EOS appended, as in training) are cut into windows of the
model's context; consecutive windows share one token, so every token after the
first is predicted exactly once. (Training's validation uses half-overlapping
windows, which counts most tokens twice; the means are close but not equal.)
The loss is the mean cross-entropy in nats over the predicted tokens, PAD
excluded; accuracy is the share whose argmax is right, as the original reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.errors import BadParameterError


@dataclass(frozen=True)
class LossResult:
    """Loss (nats per token), perplexity and accuracy over ``tokens`` predicted tokens."""

    loss: float
    perplexity: float
    accuracy: float
    tokens: int
    files: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def file_windows(files: Sequence[np.ndarray], seq_len: int, pad_id: int, eos_id: int) -> np.ndarray:
    """``(n_windows, seq_len + 1)`` int64 windows over each file's ids plus EOS, PAD-filled."""
    if seq_len < 1:
        raise BadParameterError(f"seq_len: {seq_len} must be at least 1")
    rows = []
    for ids in files:
        seq = np.append(np.asarray(ids, dtype=np.int64), eos_id)
        for start in range(0, max(len(seq) - 1, 1), seq_len):
            chunk = seq[start : start + seq_len + 1]
            row = np.full(seq_len + 1, pad_id, dtype=np.int64)
            row[: len(chunk)] = chunk
            rows.append(row)
    return np.stack(rows) if rows else np.zeros((0, seq_len + 1), dtype=np.int64)


@torch.inference_mode()
def evaluate_loss(
    model: torch.nn.Module,
    files: Sequence[np.ndarray],
    pad_id: int,
    eos_id: int,
    seq_len: int | None = None,
    batch_size: int = 8,
) -> LossResult:
    """Loss, perplexity and accuracy of ``model`` on ``files`` (token id arrays).

    ``model(ids)`` must return ``(logits, _)``; ``seq_len`` defaults to the
    model's context (``model.cfg.context``).
    """
    if batch_size < 1:
        raise BadParameterError(f"batch_size: {batch_size} must be at least 1")
    seq_len = seq_len or int(model.cfg.context)  # type: ignore[union-attr]
    windows = file_windows(files, seq_len, pad_id, eos_id)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct, count = 0.0, 0, 0
    try:
        for i in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[i : i + batch_size]).to(device)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            logits, _ = model(inputs)
            flat_logits = logits.reshape(-1, logits.size(-1)).float()
            flat = targets.reshape(-1)
            loss_sum += float(
                F.cross_entropy(flat_logits, flat, ignore_index=pad_id, reduction="sum")
            )
            keep = flat != pad_id
            correct += int(((flat_logits.argmax(-1) == flat) & keep).sum())
            count += int(keep.sum())
    finally:
        model.train(was_training)
    if count == 0:
        return LossResult(math.nan, math.nan, math.nan, 0, len(files))
    loss = loss_sum / count
    return LossResult(loss, math.exp(min(loss, 700.0)), correct / count, count, len(files))
