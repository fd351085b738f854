"""A preallocated key/value cache in two segments: a shared prefix and per-row tokens.

Decoding several rows from one prompt (beam search, several samples) is the
common case: the prompt's keys and values are stored once (batch 1, the
*prefix*) and every row attends to them, while each row's own tokens live in the
*own* segment (batch B). Reordering rows for beam search then moves only the
rows' own tokens, never the prompt: copying the whole cache every step made
width-8 beam search cost ~7x greedy.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer for ``batch`` rows of up to ``max_len`` tokens."""

    def __init__(
        self,
        n_layer: int,
        n_head: int,
        head_dim: int,
        batch: int,
        max_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (n_layer, batch, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # own segment
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.prefix_k: torch.Tensor | None = None  # (n_layer, 1, n_head, P, head_dim)
        self.prefix_v: torch.Tensor | None = None
        self.own_len = 0
        self.max_len = max_len

    @property
    def batch(self) -> int:
        return self.k.shape[1]

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix_k is None else self.prefix_k.shape[3]

    @property
    def length(self) -> int:
        """Tokens seen by every row: the position of the next token."""
        return self.prefix_len + self.own_len

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a layer's new keys/values ``(B, H, T, D)``; return its own segment so far."""
        t0, t1 = self.own_len, self.own_len + k.shape[2]
        if t1 > self.max_len:
            raise RuntimeError(f"KV cache overflow: {t1} > {self.max_len} tokens")
        self.k[layer, :, :, t0:t1] = k
        self.v[layer, :, :, t0:t1] = v
        return self.k[layer, :, :, :t1], self.v[layer, :, :, :t1]

    def advance(self, n: int) -> None:
        """Commit ``n`` tokens written to every layer."""
        self.own_len += n

    def prefix(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.prefix_k is None or self.prefix_v is None:
            return None
        return self.prefix_k[layer], self.prefix_v[layer]

    def expand(self, batch: int) -> None:
        """Turn a batch-1 cache's tokens into the shared prefix of ``batch`` new rows."""
        if self.batch != 1 or self.prefix_k is not None:
            raise RuntimeError("expand() needs a batch-1 cache without a prefix")
        n = self.own_len
        self.prefix_k = self.k[:, :, :, :n].clone()
        self.prefix_v = self.v[:, :, :, :n].clone()
        n_layer, _, n_head, _, head_dim = self.k.shape
        own_shape = (n_layer, batch, n_head, self.max_len - n, head_dim)
        self.k = torch.zeros(own_shape, dtype=self.k.dtype, device=self.k.device)
        self.v = torch.zeros(own_shape, dtype=self.v.dtype, device=self.v.device)
        self.max_len -= n
        self.own_len = 0

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i now continues row ``rows[i]`` (beam search); the prefix is untouched."""
        n = self.own_len
        if n == 0:
            return
        if torch.equal(rows, torch.arange(self.batch, device=rows.device)):
            return
        self.k[:, :, :, :n] = self.k[:, rows, :, :n]
        self.v[:, :, :, :n] = self.v[:, rows, :, :n]
