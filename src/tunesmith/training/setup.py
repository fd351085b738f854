"""Building a run's model and config: a fresh preset, ``--init-from``, or ``--resume``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.model.config import preset
from tunesmith.model.transformer import Transformer
from tunesmith.training.config import TrainConfig
from tunesmith.training.state import saved_train_config


def build_model(
    cfg: TrainConfig, vocab_size: int, pad_id: int, base: Transformer | None
) -> Transformer:
    """A fresh preset sized to the data, or a copy of ``base`` (``--init-from``) to fine-tune.

    A fresh model's context is the training window: positions past it would never
    have been trained, and the generator slides its window by the model's context.
    """
    if base is None:
        overrides: dict[str, Any] = {"context": cfg.seq_len}
        if cfg.dropout is not None:
            overrides["dropout"] = cfg.dropout
        return Transformer(preset(cfg.preset, vocab_size, **overrides), pad_id=pad_id)
    if cfg.seq_len > base.cfg.context:
        raise BadParameterError(
            f"--seq-len {cfg.seq_len} exceeds the context ({base.cfg.context}) of --init-from"
        )
    model_cfg = base.cfg if cfg.dropout is None else replace(base.cfg, dropout=cfg.dropout)
    model = Transformer(model_cfg, pad_id=pad_id)
    model.load_state_dict(base.state_dict())
    return model


def resume_config(run_dir: str | Path, given: dict[str, Any]) -> TrainConfig | None:
    """The saved run's TrainConfig with the options the user gave on the command line.

    The result must still match the saved run outside :data:`RESUMABLE_FIELDS`
    (checked by :class:`Trainer`); the cosine horizon (``decay_steps``) stays the
    saved one unless given, so extending ``max_steps`` does not rewrite the past.
    ``None``: the run was killed before its first checkpoint and recorded no
    config; it starts afresh with the options given, as a new run would.
    """
    saved = saved_train_config(Path(run_dir))
    if saved is None:
        return None
    merged = saved.to_dict()
    if given.get("precision") == "auto":  # a run's auto was resolved at its start: keep it
        given = {k: v for k, v in given.items() if k != "precision"}
    merged.update(given)
    if "epochs" in given:
        merged["max_steps"] = None
    if "max_steps" in given:
        merged["epochs"] = None
    try:
        return TrainConfig.from_dict(merged)
    except TunesmithError as err:
        raise TunesmithError(f"--resume: {err}") from None
