"""The rows being decoded, as one object: their tokens, the model's window over them, and
their grammar state, appended to and reordered together.

Beam search keeps several rows and, every step, makes each continue one of them;
this is the one place that moves every per-row structure, and the number of rows
is the one its arrays have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.fused_window import FusedWindow
from tunesmith.generation.grammar import Grammar, Rule, make_grammar
from tunesmith.model.fused_step import FusedDecoder
from tunesmith.tokenization.base import Tokenizer

if TYPE_CHECKING:
    from tunesmith.model.decode import DecodeStep


class TorchRows:
    """:class:`~tunesmith.generation.window.CachedWindow` (torch tensors) seen through numpy."""

    def __init__(self, decoder: DecodeStep, prompt: list[int]) -> None:
        import torch

        from tunesmith.generation.window import CachedWindow

        self._torch = torch
        self.window = CachedWindow(decoder, prompt)

    @property
    def rows(self) -> int:
        return self.window.rows

    @property
    def length(self) -> int:
        return self.window.ids.shape[1]

    def row_ids(self, row: int) -> list[int]:
        return self.window.ids[row].tolist()

    def fork(self, rows: int) -> None:
        self.window.fork(rows)

    def logits(self) -> np.ndarray:
        return self.window.logits().numpy()

    def push(self, tokens: np.ndarray) -> None:
        self.window.push(self._torch.from_numpy(tokens))

    def reorder(self, rows: np.ndarray) -> None:
        self.window.reorder(self._torch.from_numpy(rows))


def open_window(decoder: Any, prompt: list[int]) -> FusedWindow | TorchRows:
    """The window a decoder runs: numpy for the fused ONNX decoder, else the torch cache's."""
    if isinstance(decoder, FusedDecoder):
        return FusedWindow(decoder, prompt)
    return TorchRows(decoder, prompt)


class Sequences:
    """Rows continuing one prompt: one row at first, several after :meth:`fork`."""

    def __init__(
        self,
        decoder: DecodeStep | FusedDecoder,
        tokenizer: Tokenizer,
        prompt: list[int],
        cfg: GenerationConfig,
        rules: Sequence[Rule] = (),
    ) -> None:
        self.grammar: Grammar = make_grammar(tokenizer, cfg, rules)
        self.grammar.feed_prompt(prompt)
        self.window = open_window(decoder, prompt)
        self.prompt_length = len(prompt)

    @property
    def rows(self) -> int:
        return self.window.rows

    @property
    def new_length(self) -> int:
        """Tokens added after the prompt (the same in every row)."""
        return self.window.length - self.prompt_length

    def fork(self, rows: int) -> None:
        """Make the one row ``rows`` identical rows."""
        self.window.fork(rows)
        self.grammar.reorder(np.zeros(rows, dtype=np.int64))

    def logits(self) -> np.ndarray:
        """``(B, V)`` the model's logits of each row's next token (before any rule)."""
        return self.window.logits()

    def append(self, tokens: np.ndarray) -> None:
        """Add one token ``(B,)`` (int64) to every row."""
        self.grammar.update(tokens)
        self.window.push(tokens)

    def reorder(self, rows: np.ndarray) -> None:
        """Row i continues row ``rows[i]``."""
        self.window.reorder(rows)
        self.grammar.reorder(rows)

    def new_ids(self, row: int) -> list[int]:
        """The ids row ``row`` added after the prompt."""
        return self.window.row_ids(row)[self.prompt_length :]
