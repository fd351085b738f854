"""The model's view of growing sequences: a KV cache over a sliding window.

Past the context length, the model sees the most recent tokens, as the original
did. Rather than re-running the full window for every new token (the original's
cost), the window slides in jumps: when the cache is full, the last
``context - slide`` tokens are re-encoded from position 0 and decoding goes on
from there. Every logit is thus exactly what an uncached forward pass over the
window ``ids[:, start:]`` gives, ``start`` being the attribute of that name.

The prompt and every re-encoded window go through ``Transformer.forward`` (the
reference); each single new token goes through the decoder's explicit step.

A model with ``cfg.bar_positions`` also gets every token's position in the bar: a
:class:`~tunesmith.tokenization.bar_clock.BarClock` per row, counted from the prompt's
first id (a re-encoded window keeps the positions its tokens had).
"""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.generation.slide import default_slide, window_start
from tunesmith.model.decode import DecodeStep
from tunesmith.tokenization.bar_clock import BarClock


class CachedWindow:
    """Rows of tokens decoded in step: push a token per row, read the next logits, reorder.

    It starts as one row holding the prompt; :meth:`fork` makes it several.
    Logits are computed when asked for, so tokens pushed last (the piece has
    ended) cost no model step.
    """

    @torch.inference_mode()
    def __init__(self, decoder: DecodeStep, prompt: list[int], slide: int | None = None) -> None:
        self.decoder = decoder
        self.model = decoder.model
        self.context = self.model.cfg.context
        self.slide = slide or default_slide(self.context)
        self.ids = torch.tensor(prompt, dtype=torch.long)[None]  # (B, L)
        # A prompt longer than the context is cut to its last part, as after a slide.
        self.start = window_start(len(prompt), self.context, self.slide)
        self.clock: BarClock | None = None
        self.pos: torch.Tensor | None = None  # (B, L) positions in the bar of ``ids``
        if self.model.cfg.bar_positions:
            self.clock = BarClock()
            self.pos = torch.from_numpy(self.clock.feed_prompt(prompt).astype(np.int64))[None]
        self.cache = self.model.new_cache(1)
        logits, _ = self.model(
            self.ids[:, self.start :], cache=self.cache, last_only=True, **self._pos(self.start)
        )
        self._logits = logits[:, -1]  # (B, V)
        self._pending: torch.Tensor | None = None  # tokens pushed but not yet through the model

    def _pos(
        self, start: int, stop: int | None = None, rows: int | None = None
    ) -> dict[str, torch.Tensor]:
        """``bar_pos``, the positions in the bar of ``ids[:rows, start:stop]``, as the keyword
        the model takes; nothing for a model without them (which may not know the keyword)."""
        return {} if self.pos is None else {"bar_pos": self.pos[:rows, start:stop]}

    @property
    def rows(self) -> int:
        return self.ids.shape[0]

    @torch.inference_mode()
    def fork(self, rows: int) -> None:
        """Make the one row ``rows`` identical rows; the prompt is stored once, shared by all."""
        if self.rows != 1 or self._pending is not None:
            raise RuntimeError("fork() needs one row and no pushed token")
        if rows > 1:
            self.cache.expand(rows)
            self.ids = self.ids.expand(rows, -1).clone()
            self._logits = self._logits.expand(rows, -1)
            if self.clock is not None and self.pos is not None:
                self.clock.reorder(np.zeros(rows, dtype=np.int64))
                self.pos = self.pos.expand(rows, -1).clone()

    def push(self, tokens: torch.Tensor) -> None:
        """Add one token per row ``(B,)``; the model sees it when logits are next asked for."""
        self.logits()
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        if self.clock is not None and self.pos is not None:
            new = torch.from_numpy(self.clock.feed(tokens.numpy()).astype(np.int64))
            self.pos = torch.cat([self.pos, new[:, None]], dim=1)
        self._pending = tokens

    def logits(self) -> torch.Tensor:
        """``(B, V)`` logits of the token after each row."""
        if self._pending is not None:  # asked twice a token: the second costs nothing
            self._run_pending()
        return self._logits

    @torch.inference_mode()
    def _run_pending(self) -> None:
        tokens, self._pending = self._pending, None
        if self.cache.length >= self.context:
            self._slide()
        else:
            last = {} if self.pos is None else {"bar_pos": self.pos[:, -1]}
            self._logits = self.decoder.step(tokens, self.cache, **last)

    def _slide(self) -> None:
        self.start = window_start(self.ids.shape[1], self.context, self.slide)
        window = self.ids[:, self.start :]  # (B, W)
        # The rows' common beginning (beams agree on their past but for the last
        # few tokens) is encoded once, as the shared segment; then each row's rest.
        same = window == window[:1]
        if self.pos is not None:  # equal ids after different pasts may stand elsewhere in the bar
            same &= self.pos[:, self.start :] == self.pos[:1, self.start :]
        same = same.all(dim=0).tolist() + [False]
        common = min(same.index(False), window.shape[1] - 1) if self.rows > 1 else 0
        self.cache = self.model.new_cache(1)
        if common:
            shared = self._pos(self.start, self.start + common, rows=1)
            self.model(window[:1, :common], cache=self.cache, **shared)
        if self.rows > 1:
            self.cache.expand(self.rows)
        logits, _ = self.model(
            window[:, common:], cache=self.cache, last_only=True, **self._pos(self.start + common)
        )
        self._logits = logits[:, -1]

    @torch.inference_mode()
    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues row ``rows[i]`` (beam search)."""
        self.logits()
        self.ids = self.ids[rows]
        self._logits = self._logits[rows]
        self.cache.reorder(rows)
        if self.clock is not None and self.pos is not None:
            self.pos = self.pos[rows]
            self.clock.reorder(rows.numpy())
