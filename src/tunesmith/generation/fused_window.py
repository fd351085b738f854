"""One row's window over the fused ONNX step, in numpy: the torch-free decoding path.

It keeps :class:`~tunesmith.generation.window.CachedWindow`'s contract for one row:
the logits after each token are those of the model over the window ``ids[start:]``,
and past the context the window slides in jumps of ``slide`` tokens. The prompt and a
slid window are fed to the fused graph in one run (a prefill), each new token in a step.
"""

from __future__ import annotations

import numpy as np

from tunesmith.generation.slide import default_slide, window_start
from tunesmith.model.fused_step import FusedDecoder, new_storage
from tunesmith.tokenization.bar_clock import BarClock


class FusedWindow:
    """One row of tokens: push a token, read the next logits (``(1, V)`` float32)."""

    def __init__(self, decoder: FusedDecoder, prompt: list[int], slide: int | None = None) -> None:
        if not prompt:
            raise ValueError("a window needs at least one prompt token")
        self.step = decoder.step
        self.context = decoder.cfg.context
        self.slide = slide or default_slide(self.context)
        self.ids = list(prompt)
        # A model with bar positions: every id's position in the bar, counted from the prompt's
        # start (a slide keeps them), as CachedWindow gives the torch forward.
        self.clock = BarClock() if decoder.cfg.bar_positions else None
        self.pos = None if self.clock is None else self.clock.feed_prompt(prompt).tolist()
        # A prompt longer than the context is cut to its last part, as after a slide.
        self.start = window_start(len(prompt), self.context, self.slide)
        self.kv = new_storage(decoder.cfg)
        self._refill()
        self._pending: int | None = None  # a token pushed but not yet through the model

    rows = 1

    @property
    def length(self) -> int:
        """Tokens in the row, the prompt's included."""
        return len(self.ids)

    def row_ids(self, row: int) -> list[int]:
        """The ids of row ``row`` (the only one)."""
        return list(self.ids)

    def _refill(self) -> None:
        """Encode ``ids[start:]`` from an empty cache, in one run."""
        bar_pos = None if self.pos is None else np.asarray(self.pos[self.start :])
        self._logits = self.step.prefill(np.asarray(self.ids[self.start :]), self.kv, bar_pos)
        self.past = len(self.ids) - self.start

    def _run(self, i: int) -> None:
        """Feed ``ids[i]`` to the model."""
        bar_pos = None if self.pos is None else int(self.pos[i])
        self._logits = self.step.run(self.ids[i], self.kv, self.past, bar_pos=bar_pos)
        self.past += 1

    def fork(self, rows: int) -> None:
        """Beam search's rows: one row only on this path."""
        if rows != 1:
            raise ValueError("the fused ONNX window decodes one row")

    def push(self, tokens: np.ndarray) -> None:
        """Add one token (``(1,)``); the model sees it when logits are next asked for."""
        self.logits()
        self._pending = int(tokens[0])
        self.ids.append(self._pending)
        if self.clock is not None and self.pos is not None:
            self.pos.append(int(self.clock.feed(np.asarray(tokens[:1]))[0]))

    def logits(self) -> np.ndarray:
        """``(1, V)`` logits of the token after the row."""
        if self._pending is not None:
            self._pending = None
            if self.past >= self.context:  # full: slide, re-encoding the window's last part
                self.start = window_start(len(self.ids), self.context, self.slide)
                self._refill()
            else:
                self._run(len(self.ids) - 1)
        return self._logits

    def reorder(self, rows: np.ndarray) -> None:
        """Row 0 continues row 0: nothing to move."""
        if rows.tolist() != [0]:
            raise ValueError("the fused ONNX window decodes one row")
