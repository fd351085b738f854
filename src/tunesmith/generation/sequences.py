"""The rows being decoded, as one object: their tokens, the model's window over them, and
their grammar state, appended to and reordered together.

Beam search keeps several rows and, every step, makes each continue one of them;
this is the one place that moves every per-row structure, and the number of rows
is the one its arrays have.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.grammar import Grammar, Rule, make_grammar
from tunesmith.generation.window import CachedWindow
from tunesmith.model.decode import DecodeStep
from tunesmith.tokenization.base import Tokenizer


class Sequences:
    """Rows continuing one prompt: one row at first, several after :meth:`fork`."""

    def __init__(
        self,
        decoder: DecodeStep,
        tokenizer: Tokenizer,
        prompt: list[int],
        cfg: GenerationConfig,
        rules: Sequence[Rule] = (),
    ) -> None:
        self.grammar: Grammar = make_grammar(tokenizer, cfg, rules)
        self.grammar.feed_prompt(prompt)
        self.window = CachedWindow(decoder, prompt)
        self.prompt_length = len(prompt)

    @property
    def rows(self) -> int:
        return self.window.rows

    @property
    def new_length(self) -> int:
        """Tokens added after the prompt (the same in every row)."""
        return self.window.ids.shape[1] - self.prompt_length

    def fork(self, rows: int) -> None:
        """Make the one row ``rows`` identical rows."""
        self.window.fork(rows)
        self.grammar.reorder(np.zeros(rows, dtype=np.int64))

    def logits(self) -> np.ndarray:
        """``(B, V)`` the model's logits of each row's next token (before any rule)."""
        return self.window.logits().numpy()

    def append(self, tokens: np.ndarray) -> None:
        """Add one token ``(B,)`` (int64) to every row."""
        self.grammar.update(tokens)
        self.window.push(torch.from_numpy(tokens))

    def reorder(self, rows: np.ndarray) -> None:
        """Row i continues row ``rows[i]``."""
        self.window.reorder(torch.from_numpy(rows))
        self.grammar.reorder(rows)

    def new_ids(self, row: int) -> list[int]:
        """The ids row ``row`` added after the prompt."""
        return self.window.ids[row, self.prompt_length :].tolist()
