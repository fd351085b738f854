"""ONNX Runtime sessions and the fused batch-1 step over numpy buffers, without torch.

The fused graph (:mod:`tunesmith.model.fused_graph`) appends each new key and value
to the buffers bound as both its past input and its present output, so a decoding
of one row needs nothing but numpy storage, ``(n_layer, 2, 1, H, context, D)``
float32, and the number of tokens already in it. The torch cache's decoder
(:class:`~tunesmith.model.onnx_decode.OnnxDecoder`) binds its storage here too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.model.config import ModelConfig


def load_session(graph: Path | bytes, threads: int | None) -> Any:
    """An ONNX Runtime session of a step graph, run with ``threads`` threads (None: its own)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    if threads is not None:
        opts.intra_op_num_threads = threads
    if threads == 1:  # no pool to spin: on a shared machine spinning threads only steal time
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = graph if isinstance(graph, bytes) else str(graph)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


class LazySession:
    """A session loaded on its first use: a decoding that runs the fused graph alone (every
    search but beam) does not pay for loading the step graph. Safe to share between threads.
    ``check`` runs before the load (it refuses a graph whose bytes were never verified)."""

    def __init__(
        self, graph: Path | bytes, threads: int | None, check: Callable[[], None] | None = None
    ) -> None:
        self._graph, self._threads, self._check = graph, threads, check
        self._session: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The session, loaded now if it was not yet."""
        with self._lock:
            if self._session is None:
                if self._check is not None:
                    self._check()
                self._session = load_session(self._graph, self._threads)
            return self._session


def bind(binding: Any, name: str, arr: np.ndarray, output: bool = False) -> None:
    """Bind a contiguous CPU array to a graph input or output by its address."""
    bind_to = binding.bind_output if output else binding.bind_input
    bind_to(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)


def new_storage(cfg: ModelConfig) -> np.ndarray:
    """Empty keys and values of one row, ``(n_layer, 2, 1, H, context, D)`` float32; positions
    past those written are never read."""
    return np.zeros((cfg.n_layer, 2, 1, cfg.n_head, cfg.context, cfg.head_dim), np.float32)


class FusedStep:
    """The fused batch-1 graph bound to one storage (rebound when another is given)."""

    def __init__(self, session: Any, vocab_size: int) -> None:
        self.session = session
        names = {i.name for i in session.get_inputs()}
        self._scalars = {n: np.zeros((), dtype=np.int64) for n in ("pos", "past") if n in names}
        self._tokens = np.zeros(1, dtype=np.int64)
        # A model with bar positions: the token's position in the bar.
        self._bar_pos = np.zeros(1, dtype=np.int64) if "bar_pos" in names else None
        self._logits = np.empty((1, vocab_size), dtype=np.float32)
        self._binding: Any = None
        self._owner: Any = None  # what the bound storage belongs to, kept alive with its address

    def _rebind(self, kv: np.ndarray, owner: Any) -> None:
        b = self._binding = self.session.io_binding()
        bind(b, "tokens", self._tokens)
        if self._bar_pos is not None:
            bind(b, "bar_pos", self._bar_pos)
        for name, arr in self._scalars.items():
            bind(b, name, arr)
        for i in range(kv.shape[0]):
            for j, name in enumerate("kv"):  # past and present: the same memory
                bind(b, f"s{name}{i}", kv[i, j])
                bind(b, f"present_{name}{i}", kv[i, j], output=True)
        bind(b, "logits", self._logits, output=True)
        self._owner = owner

    def run(
        self, token: int, kv: np.ndarray, past: int, owner: Any = None, bar_pos: int | None = None
    ) -> np.ndarray:
        """Logits ``(1, V)`` after ``token``, its key and value written to ``kv`` at ``past``
        (the tokens already there, also its position). ``owner``: the object ``kv`` views
        (default ``kv`` itself), by which a storage already bound is recognised. ``bar_pos``:
        the token's position in the bar, for (and only for) a model with bar positions."""
        if (bar_pos is None) != (self._bar_pos is None):
            raise ValueError("bar_pos must be given for, and only for, a model with bar positions")
        owner = kv if owner is None else owner
        if owner is not self._owner:
            self._rebind(kv, owner)
        self._tokens[0] = token
        if self._bar_pos is not None:
            self._bar_pos[0] = bar_pos
        for arr in self._scalars.values():
            arr[...] = past
        self.session.run_with_iobinding(self._binding)
        return self._logits.copy()  # the buffer is the next step's output


class FusedDecoder:
    """One row decoded through the fused graph over numpy storage (the torch-free path);
    :class:`~tunesmith.generation.fused_window.FusedWindow` drives it."""

    def __init__(self, session: Any, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.step = FusedStep(session, cfg.vocab_size)
