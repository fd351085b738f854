"""The music rule's contract: a mask over the pairs grammar's next token (see
:class:`~tunesmith.generation.grammar.PairGrammar`), and the base of rules without state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from tunesmith.generation.grammar import PairGrammar


class Rule(Protocol):
    """A music rule as a mask over the pairs grammar's next token, row by row.

    ``restrict`` gets the grammar (read its per-row state: ``pending``, ``step``,
    ``low``, ``sounding``, ``elapsed``, ``new_notes``) and the ``(B, V)`` mask so
    far (a numpy array), and returns it narrowed (copy before writing into it). A rule must leave
    each row something legal that leads on to the length target. A rule with its
    own per-row state moves it in ``reorder`` and advances it in ``update``, called
    after the grammar took the tokens.
    """

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray: ...

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None: ...

    def reorder(self, rows: np.ndarray) -> None: ...


class StatelessRule:
    """Base of rules that read only the grammar's state."""

    def restrict(self, grammar: PairGrammar, mask: np.ndarray) -> np.ndarray:
        return mask

    def update(self, grammar: PairGrammar, tokens: np.ndarray) -> None:
        return None

    def reorder(self, rows: np.ndarray) -> None:
        return None
