"""The model's view of growing sequences: a KV cache over a sliding window.

Past the context length, the model sees the most recent tokens, as the original
did. Rather than re-running the full window for every new token (the original's
cost), the window slides in jumps: when the cache is full, the last
``context - slide`` tokens are re-encoded from position 0 and decoding goes on
from there. Every logit is thus exactly what an uncached forward pass over the
window ``ids[:, start:]`` gives, ``start`` being the attribute of that name.
"""

from __future__ import annotations

import torch

from tunesmith.model.transformer import Transformer


class CachedWindow:
    """``rows`` sequences decoded in step: logits of the next token, append, reorder."""

    def __init__(
        self, model: Transformer, prompt: list[int], rows: int, slide: int | None = None
    ) -> None:
        self.model = model
        self.context = model.cfg.context
        self.slide = slide or max(1, self.context // 4)
        self.rows = rows
        self.ids = torch.tensor(prompt, dtype=torch.long)[None].expand(rows, -1).clone()  # (B, L)
        # A prompt longer than the context is cut to its last part, as after a slide.
        self.start = 0 if len(prompt) <= self.context else len(prompt) - (self.context - self.slide)
        self.cache = model.new_cache(1)
        logits, _ = model(self.ids[:1, self.start :], cache=self.cache, last_only=True)
        if rows > 1:  # the prompt is stored once and shared by every row
            self.cache.expand(rows)
        self.logits = logits[:, -1].expand(rows, -1)  # (B, V)

    @torch.inference_mode()
    def append(self, tokens: torch.Tensor) -> torch.Tensor:
        """Add one token per row; return the next ``(B, V)`` logits."""
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        if self.cache.length >= self.context:
            self._slide()
        else:  # one token per row: the model's dedicated decode step
            self.logits = self.model(tokens[:, None], cache=self.cache)[0][:, -1]
        return self.logits

    def _slide(self) -> None:
        n = self.ids.shape[1]
        self.start = n - (self.context - self.slide)
        window = self.ids[:, self.start :]  # (B, W)
        old = self.cache
        # The rows' common beginning (beams agree on their past but for the last
        # few tokens) is encoded once, as the shared segment; then each row's rest.
        same = (window == window[:1]).all(dim=0).tolist() + [False]
        common = min(same.index(False), window.shape[1] - 1) if self.rows > 1 else 0
        self.cache = self.model.new_cache(1)
        if common:
            self.model(window[:1, :common], cache=self.cache)
        if self.rows > 1:
            self.cache.expand(self.rows)
        self.cache.plan = old.plan  # the same weights, the same batch: keep the decode buffers
        logits, _ = self.model(window[:, common:], cache=self.cache, last_only=True)
        self.logits = logits[:, -1]

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues row ``rows[i]`` (beam search)."""
        self.ids = self.ids[rows]
        self.logits = self.logits[rows]
        self.cache.reorder(rows)
