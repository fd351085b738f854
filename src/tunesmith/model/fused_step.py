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
    """The fused graph bound to one storage (rebound when another is given): a step of one
    token, or a prefill of many into an empty cache."""

    def __init__(self, session: Any, vocab_size: int) -> None:
        self.session = session
        self._bar = "bar_pos" in {i.name for i in session.get_inputs()}  # a bar-position model
        self._past = np.zeros((), dtype=np.int64)
        self._tokens = np.zeros(1, dtype=np.int64)
        self._bar_pos = np.zeros(1, dtype=np.int64)
        self._logits = np.empty((1, vocab_size), dtype=np.float32)
        self._binding: Any = None
        self._owner: Any = None  # what the bound storage belongs to, kept alive with its address

    def _bind(self, kv: np.ndarray, tokens: np.ndarray, bar_pos: np.ndarray | None) -> Any:
        """A binding of ``tokens`` ``(S,)`` (and ``bar_pos``, a bar model's) over ``kv``."""
        b = self.session.io_binding()
        bind(b, "tokens", tokens)
        if bar_pos is not None:
            bind(b, "bar_pos", bar_pos)
        bind(b, "past", self._past)
        for i in range(kv.shape[0]):
            for j, name in enumerate("kv"):  # past and present: the same memory
                bind(b, f"s{name}{i}", kv[i, j])
                bind(b, f"present_{name}{i}", kv[i, j], output=True)
        bind(b, "logits", self._logits, output=True)
        return b

    def _check(self, bar_pos: object) -> None:
        if (bar_pos is None) == self._bar:
            raise ValueError("bar_pos must be given for, and only for, a model with bar positions")

    def run(
        self, token: int, kv: np.ndarray, past: int, owner: Any = None, bar_pos: int | None = None
    ) -> np.ndarray:
        """Logits ``(1, V)`` after ``token``, its key and value written to ``kv`` at ``past``
        (the tokens already there, also its position). ``owner``: the object ``kv`` views
        (default ``kv`` itself), by which a storage already bound is recognised. ``bar_pos``:
        the token's position in the bar, for (and only for) a model with bar positions."""
        self._check(bar_pos)
        owner = kv if owner is None else owner
        if owner is not self._owner:
            bars = self._bar_pos if self._bar else None
            self._binding, self._owner = self._bind(kv, self._tokens, bars), owner
        self._tokens[0] = token
        self._bar_pos[0] = bar_pos or 0
        self._past[...] = past
        self.session.run_with_iobinding(self._binding)
        return self._logits.copy()  # the buffer is the next step's output

    def prefill(
        self, tokens: np.ndarray, kv: np.ndarray, bar_pos: np.ndarray | None = None
    ) -> np.ndarray:
        """Logits ``(1, V)`` after the last of ``tokens`` ``(S,)``, all fed in one run into the
        empty storage ``kv`` (their keys and values written at 0..S-1). ``bar_pos`` ``(S,)``:
        their positions in the bar, for (and only for) a model with bar positions."""
        self._check(bar_pos)
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        bars = None if bar_pos is None else np.ascontiguousarray(bar_pos, dtype=np.int64)
        self._past[...] = 0
        self.session.run_with_iobinding(self._bind(kv, tokens, bars))
        return self._logits.copy()


class FusedDecoder:
    """One row decoded through the fused graph over numpy storage (the torch-free path);
    :class:`~tunesmith.generation.fused_window.FusedWindow` drives it."""

    def __init__(self, session: Any, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.step = FusedStep(session, cfg.vocab_size)
