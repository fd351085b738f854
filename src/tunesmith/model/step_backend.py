"""The backend a generator decodes with, and opening a cached export without torch.

:class:`StepBackend` holds the ONNX Runtime sessions of the onnx backend; its torch
decoders import torch when asked for, so a generation on the fused graph's numpy path
(:class:`~tunesmith.model.fused_step.FusedDecoder`) never does. :func:`open_cached`
opens a valid cached export from the model's config and checkpoint checksum alone
(:mod:`tunesmith.model.backends` covers every other case, with the torch model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.model.backend_names import fused_supported
from tunesmith.model.config import ModelConfig
from tunesmith.model.fused_step import FusedDecoder, LazySession, load_session
from tunesmith.model.step_cache import StepArtifact, cache_dir

if TYPE_CHECKING:
    from tunesmith.model.decode import DecodeStep
    from tunesmith.model.transformer import Transformer


@dataclass
class StepBackend:
    """The backend a generator decodes with, and its ONNX Runtime sessions when it is onnx:
    the step graph's, and the fused batch-1 graph's (None when the model has none)."""

    name: str  # "torch" or "onnx"
    session: Any = None
    fused: Any = None

    def decoder(self, model: Transformer) -> DecodeStep:
        """A fresh torch-cache step for one decoding (any batch, any model)."""
        if self.session is None:
            from tunesmith.model.decode import Decoder

            return Decoder(model)
        from tunesmith.model.onnx_decode import OnnxDecoder

        return OnnxDecoder(model, self.session, self.fused)

    def fused_decoder(self, cfg: ModelConfig) -> FusedDecoder | None:
        """A fresh numpy decoding of one row on the fused graph; None without one."""
        return None if self.fused is None else FusedDecoder(self.fused, cfg)


def open_cached(
    cfg: ModelConfig, checksum: str, threads: int | None, loaded_only: bool = True
) -> StepBackend | None:
    """The onnx backend over the valid cached export of checkpoint ``checksum`` (a model of
    ``cfg``, its weights checked at export), or None when there is none to trust;
    ``loaded_only``: as :meth:`~tunesmith.model.step_cache.StepArtifact.problem`'s."""
    artifact = StepArtifact(checksum, cache_dir())
    if artifact.problem(cfg, loaded_only) is not None:
        return None
    return onnx_backend(cfg, artifact.graph, artifact.fused, threads, artifact.check_graph)


def onnx_backend(
    cfg: ModelConfig, graph: Path | bytes, fused: Path | bytes | None, threads: int | None,
    check: Callable[[], None] | None = None,
) -> StepBackend:  # fmt: skip
    """The onnx backend over the step graph and, when the model has one, the fused graph
    (then the step graph loads lazily, for beam search: ``check`` refuses it first when its
    bytes were not hashed before)."""
    if not (fused_supported(cfg) and fused):
        return StepBackend("onnx", load_session(graph, threads))
    return StepBackend("onnx", LazySession(graph, threads, check), load_session(fused, threads))
