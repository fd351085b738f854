"""Held-out loss, perplexity and token accuracy of a model on a split's files.

Each file's ids (with EOS appended, as in training) are cut into windows of the
model's context; consecutive windows share one token, so every token after the
first is predicted exactly once. (Training's validation uses half-overlapping
windows, which counts most tokens twice; the means are close but not equal.)
The loss is the mean cross-entropy in nats over the predicted tokens, PAD
excluded; accuracy is the share whose argmax is right, as the original reported.
A model with ``cfg.bar_positions`` also gets each id's position in the bar, counted
from its file's start as in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.errors import BadParameterError
from tunesmith.tokenization.bar_clock import bar_positions


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
    seqs = [np.append(np.asarray(ids, dtype=np.int64), eos_id) for ids in files]
    return _windows(seqs, seq_len, [pad_id] * len(seqs))


def position_windows(files: Sequence[np.ndarray], seq_len: int, eos_id: int) -> np.ndarray:
    """The positions in the bar of :func:`file_windows`' ids (padding keeps the last)."""
    seqs = [bar_positions(np.append(np.asarray(ids, dtype=np.int64), eos_id)) for ids in files]
    return _windows(seqs, seq_len, [int(seq[-1]) for seq in seqs])


def _windows(seqs: Sequence[np.ndarray], seq_len: int, fills: Sequence[int]) -> np.ndarray:
    """Windows of ``seq_len + 1`` over each sequence, one shared value apart, filled up."""
    if seq_len < 1:
        raise BadParameterError(f"seq_len: {seq_len} must be at least 1")
    rows = []
    for seq, fill in zip(seqs, fills, strict=True):
        for start in range(0, max(len(seq) - 1, 1), seq_len):
            chunk = seq[start : start + seq_len + 1]
            row = np.full(seq_len + 1, fill, dtype=np.int64)
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
    cfg = getattr(model, "cfg", None)
    positions = None
    if getattr(cfg, "bar_positions", False):
        positions = torch.from_numpy(position_windows(files, seq_len, eos_id))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct, count = 0.0, 0, 0
    try:
        for i in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[i : i + batch_size]).to(device)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            if positions is None:
                logits, _ = model(inputs)
            else:
                bar_pos = positions[i : i + batch_size, :-1].to(device)
                logits, _ = model(inputs, bar_pos=bar_pos)
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
