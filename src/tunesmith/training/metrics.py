"""Metrics of a run: ``metrics.jsonl`` always, TensorBoard when installed, wandb on request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tunesmith.errors import TunesmithError

METRICS_FILE = "metrics.jsonl"


def token_stats(
    logits: torch.Tensor, targets: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed cross-entropy, correct top-1 predictions and count over non-PAD targets.

    Accuracy is the original's: argmax of the logits equals the target, PAD excluded.
    Sums rather than means so that batches and ranks can be added up exactly.
    """
    flat_logits = logits.reshape(-1, logits.size(-1))
    flat = targets.reshape(-1)
    loss_sum = torch.nn.functional.cross_entropy(
        flat_logits.float(), flat, ignore_index=pad_id, reduction="sum"
    )
    keep = flat != pad_id
    correct = ((flat_logits.argmax(-1) == flat) & keep).sum()
    return loss_sum, correct, keep.sum()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of ``run_dir/metrics.jsonl`` (a torn last line, from a kill, is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise TunesmithError(f"{run_dir}: no {METRICS_FILE} (not a training run folder?)")
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only a kill mid-write produces a partial line
    return out


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop records past ``step``: a resumed run redoes those steps and logs them again."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    keep = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
    tmp.replace(path)


class MetricsLogger:
    """Writes each record to every sink; a no-op on ranks other than 0."""

    def __init__(
        self,
        run_dir: Path,
        enabled: bool,
        tensorboard: bool = True,
        wandb: bool = False,
        config: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.enabled = enabled
        self._file = None
        self._tb: Any = None
        self._wandb: Any = None
        if not enabled:
            return
        self._file = open(run_dir / METRICS_FILE, "a", buffering=1)  # noqa: SIM115 - closed in close()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional; jsonl is the record
                SummaryWriter = None  # noqa: N806
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if wandb:
            self._wandb = _start_wandb(run_dir, config or {}, resume)

    def log(self, record: dict[str, Any]) -> None:
        """``record`` holds ``step``, ``split`` (train/val) and numbers."""
        if not self.enabled or self._file is None:
            return
        self._file.write(json.dumps(record) + "\n")
        step, split = record["step"], record.get("split", "train")
        numbers = {
            k: v
            for k, v in record.items()
            if k not in ("step", "split") and isinstance(v, int | float)
        }
        if self._tb is not None:
            for k, v in numbers.items():
                self._tb.add_scalar(f"{split}/{k}", v, step)
        if self._wandb is not None:
            self._wandb.log({f"{split}/{k}": v for k, v in numbers.items()}, step=step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _start_wandb(run_dir: Path, config: dict[str, Any], resume: bool) -> Any:
    try:
        import wandb
    except ImportError:
        raise TunesmithError("--wandb needs the wandb package: pip install wandb") from None
    # The run id is kept in the run folder so that --resume continues the same wandb run.
    id_file = run_dir / "wandb_id.txt"
    run_id = (
        id_file.read_text().strip() if resume and id_file.is_file() else wandb.util.generate_id()
    )
    id_file.write_text(run_id)
    return wandb.init(
        project="tunesmith",
        id=run_id,
        name=run_dir.name,
        dir=str(run_dir),
        config=config,
        resume="allow",
    )
