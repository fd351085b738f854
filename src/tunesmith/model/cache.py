"""A preallocated key/value cache in two segments: tokens every row shares, and per-row tokens.

Plain storage: it holds keys and values and moves them between rows; the model's
``forward`` and the fast step (:mod:`tunesmith.model.decode`) compute what goes in.

Decoding several rows from one prompt (beam search) is the common case: the
prompt's keys and values are stored once (batch 1, the *shared* segment) and
every row attends to them, while each row's own tokens live in the *own*
segment (batch B). Beam search reorders rows every step, and copying whole rows
would make a wide beam cost many times greedy's time (``benchmarks/generation.py``
measures beam against greedy). So a reorder copies only the own tokens the rows
do not all agree on, and tokens that every row has come to share (beams soon
agree on their past) move to the shared segment, once: the own part that is
copied and read per row stays a few tokens long.
"""

from __future__ import annotations

import numpy as np
import torch


class KVCache:
    """Keys and values of every layer for ``batch`` rows of up to ``max_len`` tokens.

    ``kv[layer, 0]`` holds keys, ``kv[layer, 1]`` values, each ``(B, H, max_len, D)``:
    head-major, so attention reads one contiguous run per head. Own positions
    ``own_start .. own_len`` are live; those before ``own_start`` were copied to the
    shared segment (``shared``, ``(n_layer, 2, 1, H, capacity, D)``, first
    ``shared_len`` positions live).
    """

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
        # Never read before written, so no need to zero 100 MB for a beam.
        self.kv = torch.empty(
            (n_layer, 2, batch, n_head, max_len, head_dim), dtype=dtype, device=device
        )
        self.shared: torch.Tensor | None = None
        self.shared_len = 0
        self.own_start = 0
        self.own_len = 0
        self.max_len = max_len
        # Which step and row computed each own token: rows agree on a position
        # exactly where these ids are equal (they then hold copies of one row's values).
        self.origin = np.zeros((batch, max_len), dtype=np.int64)
        self._next_origin = 0
        # Row i's own tokens are in storage row slot[i] (kv[:, :, slot[i]]): the model
        # runs its rows in storage order, so a reorder moves as little as it can.
        self._set_slots(list(range(batch)))
        self._views()

    def _views(self) -> None:
        # Per layer, token-major views (max_len, 2, B, H, D): one token's keys and
        # values of every row are then written with one indexed copy.
        self.token_views = [layer.permute(3, 0, 1, 2, 4) for layer in self.kv]

    @property
    def batch(self) -> int:
        return self.kv.shape[2]

    @property
    def length(self) -> int:
        """Tokens seen by every row: the position of the next token."""
        return self.shared_len + self.own_len - self.own_start

    def to_storage_order(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of ``x`` (one per row, first dimension) in the order their storage rows have."""
        return x[self.order_t] if self.permuted else x

    def to_row_order(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_storage_order`."""
        return x[self.slot_t] if self.permuted else x

    def check_room(self, n: int) -> None:
        """Refuse ``n`` more own tokens when the storage has no room for them."""
        if self.own_len + n > self.max_len:
            raise RuntimeError(f"KV cache overflow: {self.own_len + n} > {self.max_len} tokens")

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a layer's new keys/values ``(B, H, T, D)``; return its live own segment."""
        self.check_room(k.shape[2])
        t0, t1 = self.own_len, self.own_len + k.shape[2]
        self.kv[layer, 0, :, :, t0:t1] = k
        self.kv[layer, 1, :, :, t0:t1] = v
        return self.kv[layer, 0, :, :, self.own_start : t1], self.kv[
            layer, 1, :, :, self.own_start : t1
        ]

    def advance(self, n: int) -> None:
        """Commit ``n`` tokens written to every layer."""
        if self.shared is not None:  # only rows sharing a segment can come to agree
            ids = self._next_origin + np.arange(self.batch * n).reshape(self.batch, n)
            self.origin[:, self.own_len : self.own_len + n] = ids
            self._next_origin += self.batch * n
        self.own_len += n

    def prefix(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The shared segment's keys and values ``(1, H, P, D)``, or None when empty."""
        if self.shared is None or self.shared_len == 0:
            return None
        return (
            self.shared[layer, 0, :, :, : self.shared_len],
            self.shared[layer, 1, :, :, : self.shared_len],
        )

    def expand(self, batch: int) -> None:
        """Turn a batch-1 cache's tokens into the shared segment of ``batch`` new rows."""
        if self.batch != 1 or self.shared is not None:
            raise RuntimeError("expand() needs a batch-1 cache without a shared segment")
        n = self.own_len
        # The batch-1 storage becomes the shared segment as is: no copy; it has
        # room for every token the rows will later agree on.
        self.shared, self.shared_len = self.kv, n
        n_layer, _, _, n_head, _, head_dim = self.kv.shape
        own_shape = (n_layer, 2, batch, n_head, self.max_len - n, head_dim)
        self.kv = torch.empty(own_shape, dtype=self.kv.dtype, device=self.kv.device)
        self.max_len -= n
        self.own_start = self.own_len = 0
        self.origin = np.zeros((batch, self.max_len), dtype=np.int64)
        self._set_slots(list(range(batch)))
        self._views()

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i now continues row ``rows[i]`` (beam search)."""
        s, n, B = self.own_start, self.own_len, self.batch
        if n == s:  # no own token yet: every storage row will do
            self._set_slots(list(range(B)))
            return
        parents = [self.slot[r] for r in rows.tolist()]  # storage rows continued
        # A row takes over its parent's storage row when it is the first to claim
        # it; only the others are copied, to storage rows no row continues.
        slot, claimed = [-1] * B, [False] * B
        for i, p in enumerate(parents):
            if not claimed[p]:
                slot[i], claimed[p] = p, True
        free = [p for p in range(B) if not claimed[p]]
        for i, p in enumerate(parents):
            if slot[i] < 0:
                slot[i] = f = free.pop()
                # Positions before own_start hold the same values in every row: copy
                # the rest only, row by row (plain copies; indexed ones go element-wise).
                self.kv[:, :, f, :, s:n] = self.kv[:, :, p, :, s:n]
                self.origin[f, s:n] = self.origin[p, s:n]
        self._set_slots(slot)
        self._share_agreed()

    def _set_slots(self, slot: list[int]) -> None:
        self.slot = slot
        self.permuted = slot != list(range(len(slot)))
        order = [0] * len(slot)  # the row in each storage row
        for i, p in enumerate(slot):
            order[p] = i
        self.slot_t, self.order_t = torch.tensor(slot), torch.tensor(order)

    def _share_agreed(self) -> None:
        """Move the own positions every row agrees on to the shared segment."""
        if self.shared is None:
            return
        s, n = self.own_start, self.own_len
        agree = (self.origin[:, s:n] == self.origin[:1, s:n]).all(axis=0)
        # Rows that agree on a position agree on all earlier ones (one row computed it).
        m = len(agree) if agree.all() else int(agree.argmin())
        if m == 0:
            return
        p = self.shared_len
        self.shared[:, :, :, :, p : p + m] = self.kv[:, :, :1, :, s : s + m]
        self.shared_len += m
        self.own_start += m
