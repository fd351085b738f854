"""Which decoding step a generator runs: ``torch`` (the eager :class:`Decoder`) or ``onnx``.

``auto`` (the default everywhere) takes ONNX Runtime when the ``fast`` extra is
installed and the model has a checksum to key its exported step by, else torch.
Exporting takes a few seconds, more than a short generation: under ``auto`` a
missing (or invalid) export is built in a background process and this run decodes
with torch, so a first run is never slower than before; ``onnx`` named explicitly
builds it in the foreground. ``TUNESMITH_BACKGROUND_EXPORT=0`` turns the background
build off (the tests do).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from tunesmith.errors import BadParameterError
from tunesmith.model import backend_names
from tunesmith.model.backend_names import BACKENDS, check_backend
from tunesmith.model.fused_graph import supports_fused
from tunesmith.model.step_backend import StepBackend, onnx_backend
from tunesmith.model.step_cache import StepArtifact, cache_dir
from tunesmith.model.transformer import Transformer

__all__ = ["BACKENDS", "StepBackend", "check_backend", "open_backend"]

_LOCK_SECONDS = 600  # a background build older than this is taken for dead


def open_backend(
    requested: str, model: Transformer, checksum: str | None, checkpoint: Path | None,
    threads: int | None,
) -> StepBackend:  # fmt: skip
    """Resolve ``requested`` (auto, torch or onnx) for ``model`` into a ready backend."""
    requested = check_backend(requested)
    if requested == "torch" or (requested == "auto" and not backend_names.onnxruntime_available()):
        return StepBackend("torch")
    if next(model.parameters()).dtype != torch.float32:
        if requested == "onnx":
            raise BadParameterError("onnx runs float32 models only", field="backend")
        return StepBackend("torch")
    if checksum is None:  # nothing to key an export by: build it in memory when asked for
        if requested == "auto":
            return StepBackend("torch")
        return onnx_backend(model.cfg, *_export_bytes(model), threads)
    artifact = StepArtifact(checksum, cache_dir())
    if requested == "onnx":
        artifact.ensure(model)
        return onnx_backend(model.cfg, artifact.graph, artifact.fused, threads)
    problem = artifact.problem(model.cfg, loaded_only=True)
    if problem is not None:
        _build_in_background(artifact, problem, checkpoint)
        return StepBackend("torch")
    return onnx_backend(model.cfg, artifact.graph, artifact.fused, threads, artifact.check_graph)


def _export_bytes(model: Transformer) -> tuple[bytes, bytes | None]:
    """The step and fused step of a model without a checkpoint, exported to memory."""
    import io

    from tunesmith.model.fused_graph import export_fused_step
    from tunesmith.model.step_graph import export_step

    def exported(export: Callable[[Transformer, BinaryIO], None]) -> bytes:
        buf = io.BytesIO()
        export(model, buf)
        return buf.getvalue()

    return exported(export_step), exported(export_fused_step) if supports_fused(model) else None


def _build_in_background(artifact: StepArtifact, problem: str, checkpoint: Path | None) -> None:
    """Start ``python -m tunesmith.model.step_cache CHECKPOINT`` detached, once at a time."""
    if os.environ.get("TUNESMITH_BACKGROUND_EXPORT", "1") == "0" or checkpoint is None:
        return
    lock = artifact.graph.with_suffix(".building")
    try:
        artifact.folder.mkdir(parents=True, exist_ok=True)
        if lock.exists() and time.time() - lock.stat().st_mtime < _LOCK_SECONDS:
            return  # another process is building it
        lock.touch()
    except OSError:
        return  # an unwritable cache only costs speed
    if problem != "missing":
        print(f"tunesmith: cached ONNX step {artifact.graph} is {problem}; rebuilding it in "
              "the background (this run decodes with torch)", file=sys.stderr)  # fmt: skip
    code = (
        "import sys; from pathlib import Path; from tunesmith.model.step_cache import main\n"
        "try: main([sys.argv[1]])\nfinally: Path(sys.argv[2]).unlink(missing_ok=True)"
    )
    subprocess.Popen(
        [sys.executable, "-c", code, str(checkpoint), str(lock)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
