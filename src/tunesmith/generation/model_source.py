"""Where a :class:`~tunesmith.generation.generator.Generator`'s model comes from, and torch's
part of decoding, imported only when a generation needs torch.

A checkpoint whose ONNX export is cached and valid decodes on it without the torch
model: its config and tokenizer (``config.json``) and its checksum suffice, and the
weights load on first use of ``Generator.model`` (beam search under ``auto``, the
torch backend, a model the fused graph cannot run). The weights' checks (finite,
float32) ran when the export was built.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.errors import BadCheckpointError, BadParameterError
from tunesmith.model import backend_names
from tunesmith.model.checkpoint_info import ModelInfo, read_model_info
from tunesmith.model.step_backend import StepBackend, open_cached

if TYPE_CHECKING:
    from tunesmith.model.transformer import Transformer


# What a config.json that does not describe a buildable model raises (BadParameterError,
# a ValueError, included); the checkpoint's own errors (BadCheckpointError) pass through.
_CONFIG_ERRORS = (RuntimeError, MemoryError, AttributeError, TypeError, ValueError)


def cached_export(
    path: str | Path | None, device: str, backend: str, threads: int | None
) -> tuple[ModelInfo, StepBackend] | None:
    """The checkpoint's config and its cached, valid ONNX backend, when ``backend`` (auto or
    onnx) can decode on it without the torch model; else None (load the model)."""
    if backend == "torch" or device != "cpu" or not backend_names.onnxruntime_available():
        return None
    try:
        info = read_model_info(path)
    except _CONFIG_ERRORS as err:
        raise load_failure(path, err) from None
    try:
        checksum = info.checksum
    except OSError:  # no weights file, or an unreadable one: load_model says so in one line
        return None
    # auto hashes only the graph a decoding of one row loads; onnx asked for by name, every
    # graph (as the export's rebuild would, with its notice, when one does not match).
    step = open_cached(info.cfg, checksum, threads, loaded_only=backend == "auto")
    return None if step is None else (info, step)


def load_model(path: str | Path | None, device: str = "cpu") -> Any:
    """The checkpoint (:class:`~tunesmith.model.checkpoint.Checkpoint`), its model loaded;
    a config that does not fit its weights or memory is one line naming the folder."""
    from tunesmith.model.checkpoint import load_checkpoint

    # The checkpoint layer trusts config.json's shapes; what they break is named here.
    try:
        return load_checkpoint(path, device=device)
    except _CONFIG_ERRORS as err:
        raise load_failure(path, err) from None


def load_failure(path: str | Path | None, err: BaseException) -> BadCheckpointError:
    """A one-line refusal naming the checkpoint whose config.json could not be built."""
    where = path if path is not None else "the bundled model"
    text = str(err)
    if isinstance(err, BadParameterError):
        reason = f"bad model config ({text})"
    elif "size mismatch" in text:
        reason = "the weights' shapes do not match config.json"
    elif isinstance(err, MemoryError) or "allocate" in text:
        reason = "config.json describes a model too large for this machine's memory"
    elif isinstance(err, AttributeError | TypeError):
        reason = f"config.json has a missing or malformed model section ({text[:120]})"
    else:
        reason = f"cannot build the model ({(text.strip().splitlines() or ['?'])[0][:120]})"
    return BadCheckpointError(f"{where}: {reason}")


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch threads, then restore the previous setting."""
    import torch

    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def torch_decoding(threads: int | None) -> Iterator[None]:
    """The context a torch-step decoding runs in: inference mode, ``threads`` threads."""
    import torch

    with torch.inference_mode(), torch_threads(threads):
        yield


def model_on_demand(model: Transformer | None, checkpoint: Path | None) -> Transformer:
    """``model``, or the checkpoint's, loaded and checked now (the cached-export start)."""
    if model is not None:
        return model
    from tunesmith.model.checkpoint import check_finite_weights

    loaded = load_model(checkpoint).model
    check_finite_weights(loaded, str(checkpoint))
    return loaded
