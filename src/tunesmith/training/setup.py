"""Building a run's model and config: a fresh preset, ``--init-from``, or ``--resume``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from tunesmith.errors import BadCheckpointError, BadParameterError, TunesmithError
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
    A ``base`` with fewer ids (a tokenizer without the fill-in specials) gets freshly
    initialised rows for the new ids in its embedding and output layer; one without
    the bar-position embedding gets it (zeros) with ``cfg.bar_positions``.
    """
    if base is None:
        overrides: dict[str, Any] = {"context": cfg.seq_len, "bar_positions": cfg.bar_positions}
        if cfg.dropout is not None:
            overrides["dropout"] = cfg.dropout
        return Transformer(preset(cfg.preset, vocab_size, **overrides), pad_id=pad_id)
    if cfg.seq_len > base.cfg.context:
        raise BadParameterError(
            f"--seq-len {cfg.seq_len} exceeds the context ({base.cfg.context}) of --init-from"
        )
    if vocab_size < base.cfg.vocab_size:
        raise BadParameterError(
            f"--init-from: the checkpoint has {base.cfg.vocab_size} ids, the data {vocab_size}"
        )
    model_cfg = replace(
        base.cfg, vocab_size=vocab_size, bar_positions=base.cfg.bar_positions or cfg.bar_positions
    )
    if cfg.dropout is not None:
        model_cfg = replace(model_cfg, dropout=cfg.dropout)
    model = Transformer(model_cfg, pad_id=pad_id)
    model.load_state_dict(grown_state(base.state_dict(), model.state_dict()))
    return model


def grown_state(
    old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``old`` weights in ``new``'s shapes: rows for ids ``old`` lacks keep ``new``'s values.

    Only the per-id tensors (embedding, output weight and bias) may differ, in their
    first dimension; every other tensor is taken as it is. Tensors ``old`` lacks
    (the bar-position embedding) keep ``new``'s values.
    """
    out = {name: value for name, value in new.items() if name not in old}
    for name, value in old.items():
        target = new[name]
        if value.shape != target.shape:
            if value.shape[1:] != target.shape[1:] or value.shape[0] > target.shape[0]:
                raise BadCheckpointError(f"--init-from: {name} has shape {tuple(value.shape)}")
            value = torch.cat([value, target[value.shape[0] :].to(value.dtype)])
        out[name] = value
    return out


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
