"""The model's typed config and its presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from tunesmith.errors import BadParameterError


@dataclass(frozen=True)
class ModelConfig:
    """Shape and style of the decoder-only Transformer.

    ``style="original"`` (called ``"seed"`` before 0.2; old configs still load) is the
    original project's design: post-LayerNorm, sinusoidal
    positions added to embeddings scaled by sqrt(d_model), ReLU feed-forward, an
    untied output layer. ``style="modern"`` is pre-norm RMSNorm, rotary positions,
    SwiGLU feed-forward and tied embeddings.

    ``bar_positions`` adds a learned embedding of each token's position in the bar
    (0..15, :mod:`tunesmith.tokenization.bar_clock`; pairs tokenizer) to the token
    embedding; ``forward`` then needs those positions. Configs saved before it existed
    lack it and load as ``False``; :meth:`to_dict` leaves it out when ``False``, so
    such configs (and the exported steps keyed by them) stay what they were.
    """

    vocab_size: int = 296
    context: int = 1024
    n_layer: int = 6
    n_head: int = 8
    d_model: int = 256
    d_ff: int = 512
    dropout: float = 0.4
    style: Literal["original", "modern"] = "original"
    bar_positions: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise BadParameterError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if self.style == "seed":  # the style's name before 0.2, in older checkpoints
            object.__setattr__(self, "style", "original")
        if self.style not in ("original", "modern"):
            raise BadParameterError(f"style must be 'original' or 'modern', not {self.style!r}")
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model", "d_ff"):
            if getattr(self, name) <= 0:
                raise BadParameterError(f"model config: {name} must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise BadParameterError(f"model config: dropout {self.dropout} is outside [0, 1)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.bar_positions:
            del data["bar_positions"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


PRESETS: dict[str, ModelConfig] = {
    # The original TensorFlow model, shape for shape.
    "seed": ModelConfig(
        context=1024, n_layer=6, n_head=8, d_model=256, d_ff=512, dropout=0.4, style="original"
    ),
    # Same budget, modern design; SwiGLU's three matrices at d_ff=352 hold as many
    # weights as the original's two at 512.
    "default": ModelConfig(
        context=1024, n_layer=6, n_head=8, d_model=256, d_ff=352, dropout=0.1, style="modern"
    ),
    # For tests: a few thousand weights, instant on a CPU.
    "tiny": ModelConfig(
        context=64, n_layer=2, n_head=4, d_model=32, d_ff=64, dropout=0.0, style="modern"
    ),
    "tiny-original": ModelConfig(
        context=64, n_layer=2, n_head=4, d_model=32, d_ff=64, dropout=0.0, style="original"
    ),
}


def preset(name: str, vocab_size: int, **overrides: Any) -> ModelConfig:
    """A preset by name, sized to ``vocab_size``, with optional field overrides."""
    if name not in PRESETS:
        raise BadParameterError(
            f"--preset: unknown preset {name!r} (choose from {', '.join(PRESETS)})"
        )
    return replace(PRESETS[name], vocab_size=vocab_size, **overrides)
