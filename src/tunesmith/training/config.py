"""The one typed config of a training run, saved in every checkpoint's ``config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from tunesmith.errors import BadParameterError
from tunesmith.tokenization import canonical_name

# Fields a resumed run may change: they set how long it runs and what it reports,
# not the trajectory of the steps already taken.
RESUMABLE_FIELDS = frozenset(
    {
        "max_steps",
        "epochs",
        "decay_steps",
        "eval_every",
        "log_every",
        "sample_notes",
        "wandb",
        "tensorboard",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run besides the model and the data.

    ``lr`` is the peak learning rate of the cosine schedule; with ``schedule="noam"``
    it multiplies the original's ``d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)``
    (so 1.0 is the original recipe). ``decay_steps`` is the cosine's horizon
    (``max_steps`` when unset), so a run can be stopped early and resumed later on
    the same schedule. ``epochs`` gives the length when ``max_steps`` is unset; a
    resolved config holds both. ``fim_rate`` is the share of training windows
    rearranged for fill-in-the-middle (the model's tokenizer then has the infill ids).
    ``bar_positions`` gives the model an embedding of each token's position in the bar
    (``ModelConfig.bar_positions``; pairs tokenizer); with ``init_from`` a checkpoint
    without one grows it, zero-initialised.
    """

    preset: str | None = "seed"
    tokenizer: str = "pairs"
    seq_len: int = 512
    batch_size: int = 16
    max_steps: int | None = None
    epochs: float | None = None
    lr: float | None = None
    schedule: Literal["cosine", "noam"] = "cosine"
    warmup_steps: int | None = None
    decay_steps: int | None = None
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    dropout: float | None = None
    augment_transpose: int = 0
    fim_rate: float = 0.0
    bar_positions: bool = False
    eval_every: int = 200
    eval_batches: int | None = None
    log_every: int = 10
    sample_notes: int = 64
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    init_from: str | None = None
    wandb: bool = False
    tensorboard: bool = True

    def __post_init__(self) -> None:
        # Runs saved before the tokenizer's rename say "seed"; they resume as "pairs".
        object.__setattr__(self, "tokenizer", canonical_name(self.tokenizer))
        positive = ("seq_len", "batch_size", "eval_every", "log_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise BadParameterError(
                    f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}"
                )
        if self.max_steps is not None and self.max_steps <= 0:
            raise BadParameterError(f"--max-steps must be positive, not {self.max_steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise BadParameterError(f"--epochs must be positive, not {self.epochs}")
        if self.lr is not None and self.lr <= 0:
            raise BadParameterError(f"--lr must be positive, not {self.lr}")
        if self.schedule not in ("cosine", "noam"):
            raise BadParameterError(f"--schedule must be 'cosine' or 'noam', not {self.schedule!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise BadParameterError(
                f"--precision must be auto, fp32 or bf16, not {self.precision!r}"
            )
        for name in ("warmup_steps", "decay_steps", "eval_batches"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "warmup_steps" else 1):
                raise BadParameterError(f"--{name.replace('_', '-')} is out of range: {value}")
        if not 0 <= self.augment_transpose <= 12:
            raise BadParameterError(
                f"--augment-transpose must be within 0..12, not {self.augment_transpose}"
            )
        if not 0 <= self.fim_rate <= 1:
            raise BadParameterError(f"--fim-rate must be within 0..1, not {self.fim_rate}")
        if self.bar_positions and self.tokenizer != "pairs":
            raise BadParameterError(
                f"--bar-positions needs the pairs tokenizer, not {self.tokenizer!r}"
            )
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise BadParameterError(f"--dropout must be within [0, 1), not {self.dropout}")
        if not 0 <= self.min_lr_ratio <= 1 or self.weight_decay < 0 or self.grad_clip < 0:
            raise BadParameterError(
                "min_lr_ratio must be in [0, 1]; weight_decay and grad_clip >= 0"
            )
        if self.sample_notes < 0:
            raise BadParameterError(f"--sample-notes must be >= 0, not {self.sample_notes}")

    def resolved(self, steps_per_epoch: int) -> TrainConfig:
        """The config with every ``None`` that depends on the data made explicit."""
        if steps_per_epoch <= 0:
            raise BadParameterError(
                "the training split is smaller than one batch; lower --batch-size or --seq-len"
            )
        max_steps = self.max_steps
        if max_steps is None:
            max_steps = max(1, round((self.epochs or 1.0) * steps_per_epoch))
        decay = self.decay_steps or max_steps
        if self.warmup_steps is not None:
            warmup = self.warmup_steps
        else:  # the original's 4000 for noam; 5% of the horizon (<= 1000) for cosine
            warmup = 4000 if self.schedule == "noam" else min(1000, max(1, decay // 20))
        lr = self.lr if self.lr is not None else (1.0 if self.schedule == "noam" else 1e-3)
        return replace(self, max_steps=max_steps, decay_steps=decay, warmup_steps=warmup, lr=lr)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(
        self, other: TrainConfig, ignore: frozenset[str] = RESUMABLE_FIELDS
    ) -> list[str]:
        """``name: mine != theirs`` for every field that differs outside ``ignore``."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name not in ignore and a != b:
                out.append(f"{f.name}: {b!r} != {a!r}")
        return out
