"""The decoding step through ONNX Runtime: the exported :class:`~tunesmith.model.step_graph.StepGraph`.

At batch 1 an eager step is mostly per-operation overhead (about 150 small operations);
ONNX Runtime runs the whole step as one call over a pre-planned graph. The cache's
buffers are bound to the graph's inputs by address (IO binding: no copy), rebound
only when the cache's storage changes (a new window, a fork); the scalars and the
outputs live in buffers bound once. One row without a shared segment (every search
but beam) runs the fused graph (:mod:`tunesmith.model.fused_graph`), whose attention
appends the new keys and values to the bound storage itself and reads only its live
positions; other caches run the step graph. :class:`OnnxDecoder` satisfies
:class:`~tunesmith.model.decode.DecodeStep`, so every search, the sliding window,
beam reordering and every rule work on it unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tunesmith.model.cache import KVCache
from tunesmith.model.decode import check_step
from tunesmith.model.fused_step import FusedStep, LazySession, bind
from tunesmith.model.step_graph import BAR_POS, SCALARS
from tunesmith.model.transformer import Transformer


def _bind(binding: Any, name: str, t: torch.Tensor | np.ndarray, output: bool = False) -> None:
    """Bind a contiguous CPU tensor or array to a graph input or output by its address."""
    bind(binding, name, t.numpy() if isinstance(t, torch.Tensor) else t, output)


def _whole_buffer(cache: KVCache) -> tuple[torch.Tensor | None, int]:
    """The batch-1 storage read whole (see step_graph) and its live length: the shared
    segment, else at batch 1 the row's own storage, else none."""
    if cache.shared is not None:
        return cache.shared, cache.shared_len
    if cache.batch == 1:
        return cache.kv, cache.own_len
    return None, 0


class OnnxDecoder:
    """The step through ONNX Runtime sessions; one per decoding (it holds its bindings).

    The sessions may be shared by decoders in several threads; a decoder may not.
    ``fused``: the fused batch-1 graph's session (None: the step graph runs every cache).
    """

    def __init__(self, model: Transformer, session: Any, fused: Any = None) -> None:
        self.model = model
        self.session = session
        self._fused = None if fused is None else FusedStep(fused, model.cfg.vocab_size)
        cfg = model.cfg
        self._scalars = {name: np.zeros((), dtype=np.int64) for name in SCALARS[1:]}
        self._empty = torch.zeros(1, cfg.n_head, 1, cfg.head_dim)  # no whole buffer
        self._binding: Any = None
        self._bound: tuple[Any, ...] = ()  # the storage bound, kept alive so its address is too

    def _rebind(self, cache: KVCache) -> None:
        """Bind the cache's storage when it changed; zero the whole buffer's unwritten tail."""
        whole, live = _whole_buffer(cache)
        if self._bound and cache.kv is self._bound[0] and whole is self._bound[1]:
            return
        if whole is not None:
            whole[:, :, :, :, live:].zero_()
        cfg, B = self.model.cfg, cache.batch
        if isinstance(self.session, LazySession):
            self.session = self.session.get()
        b = self._binding = self.session.io_binding()
        self._tokens = np.zeros(B, dtype=np.int64)
        self._logits = torch.empty(B, cfg.vocab_size)
        self._new_kv = torch.empty(cfg.n_layer, B, 2 * cfg.n_head, 1, cfg.head_dim)
        _bind(b, "tokens", self._tokens)
        if cfg.bar_positions:
            self._bar_pos = np.zeros(B, dtype=np.int64)
            _bind(b, BAR_POS, self._bar_pos)
        for name, arr in self._scalars.items():
            _bind(b, name, arr)
        for i in range(cfg.n_layer):
            for j, kv in enumerate("kv"):
                _bind(b, f"{kv}{i}", cache.kv[i, j])
                _bind(b, f"s{kv}{i}", self._empty if whole is None else whole[i, j])
        _bind(b, "logits", self._logits, output=True)
        _bind(b, "new_kv", self._new_kv, output=True)
        self._bound = (cache.kv, whole)

    @torch.inference_mode()
    def step(
        self, tokens: torch.Tensor, cache: KVCache, bar_pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, V)`` of the next token after ``tokens`` ``(B,)``; the cache takes them."""
        check_step(self.model, cache, tokens, bar_pos)
        if self._fused is not None and cache.shared is None and cache.batch == 1:
            # The new key and value go to the cache's storage at own_len; then it is committed.
            kv = cache.kv.numpy()
            logits = self._fused.run(
                int(tokens.item()),
                kv,
                cache.own_len,
                owner=cache.kv,
                bar_pos=None if bar_pos is None else int(bar_pos.item()),
            )
            cache.advance(1)
            return torch.from_numpy(logits)
        return self._step_graph(tokens, cache, bar_pos)

    @torch.inference_mode()
    def _step_graph(
        self, tokens: torch.Tensor, cache: KVCache, bar_pos: torch.Tensor | None
    ) -> torch.Tensor:
        """The step graph's step: any batch, a shared segment or not."""
        self._rebind(cache)
        own = cache.own_len
        whole, live = _whole_buffer(cache)
        s = self._scalars
        s["pos"][...], s["shared_len"][...] = cache.length, live
        # Own tokens not in the whole buffer are gathered: none when it is the own storage.
        s["lo"][...] = own if whole is cache.kv else cache.own_start
        s["hi"][...] = own
        self._tokens[:] = cache.to_storage_order(tokens).numpy()
        if bar_pos is not None:
            self._bar_pos[:] = cache.to_storage_order(bar_pos).numpy()
        self.session.run_with_iobinding(self._binding)
        L, H, D = self.model.cfg.n_layer, self.model.cfg.n_head, self.model.cfg.head_dim
        cache.kv[:, :, :, :, own] = self._new_kv.view(L, -1, 2, H, D).transpose(1, 2)
        cache.advance(1)
        logits = cache.to_row_order(self._logits)
        return logits.clone() if logits is self._logits else logits
