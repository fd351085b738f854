"""Training: ``TrainConfig``, the resumable (and distributed) ``Trainer``, metrics and plots."""

from tunesmith.training.config import RESUMABLE_FIELDS, TrainConfig
from tunesmith.training.metrics import read_metrics
from tunesmith.training.plot import plot_run
from tunesmith.training.setup import build_model, resume_config
from tunesmith.training.trainer import Trainer

__all__ = [
    "RESUMABLE_FIELDS",
    "TrainConfig",
    "build_model",
    "Trainer",
    "plot_run",
    "read_metrics",
    "resume_config",
]
