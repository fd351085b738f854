"""What a generation knob is: its help, kind, bounds, flag and UI control, checked in one place.

Each :class:`tunesmith.generation.config.GenerationConfig` field carries a :class:`Knob`
in its metadata; the CLI's options, the web UI's controls and the validation are all
derived from it, so a bound or a help text is written once.
"""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field
from typing import Any

from tunesmith.errors import BadParameterError

SEARCHES = ("greedy", "top_k", "top_p", "beam")


@dataclass(frozen=True)
class Knob:
    """One generation parameter as the front ends see it.

    ``kind`` is ``int``, ``float``, ``str`` or ``bool``; ``low``/``high`` bound numbers
    (``low_open``: ``low`` itself is refused); ``optional`` lets ``None`` through (no
    limit, or the other length unit). ``ui`` names the web control (``None``: CLI and
    API only), ``ui_high`` ends a slider where ``high`` is absent or too far, ``ui_off``
    is the UI value that means ``None`` (``ui_low`` starts the control there when it lies
    below ``low``), and ``searches`` are the searches that read it. ``by_search`` gives a
    knob whose default (``None``) depends on the search: the value per search, and
    ``off`` for the others (:meth:`GenerationConfig.resolved`).
    """

    help: str
    kind: type
    flag: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    optional: bool = False
    choices: tuple[str, ...] | None = None
    searches: tuple[str, ...] = SEARCHES
    group: str | None = None  # knobs of one group exclude each other on the command line
    ui: str | None = None  # "slider", "number", "radio", "dropdown", "text", "checkbox"
    ui_label: str | None = None
    ui_high: float | None = None
    ui_step: float = 1
    ui_off: Any = None
    ui_low: float | None = None
    suggestions: tuple[str, ...] = ()
    by_search: tuple[tuple[str, Any], ...] = ()
    off: Any = None

    def default_for(self, search: str) -> Any:
        """The value ``None`` stands for under ``search`` (a knob with ``by_search``)."""
        return dict(self.by_search).get(search, self.off)

    def bounds_text(self) -> str:
        """The allowed range in words, e.g. ``in 1-64``, ``in (0, 100]``, ``at least 1``."""
        low, high = self.low, self.high
        if low is not None and high is not None:
            if self.low_open or low < 0:
                return f"in {'(' if self.low_open else '['}{_num(low)}, {_num(high)}]"
            return f"in {_num(low)}-{_num(high)}"
        if low is not None:
            return f"more than {_num(low)}" if self.low_open else f"at least {_num(low)}"
        return "a finite number"

    def check(self, name: str, value: Any) -> None:
        """Refuse a value of the wrong type or outside the bounds, naming the field."""
        if value is None:
            if not self.optional:
                raise BadParameterError("a value is needed", field=name)
            return
        if not _is_kind(value, self.kind):
            raise BadParameterError(
                f"{value!r} is not {_KIND_WORDS[self.kind]} ({type(value).__name__})", field=name
            )
        if self.choices is not None and value not in self.choices:
            raise BadParameterError(
                f"unknown {name} {value!r} (choose from {', '.join(self.choices)})", field=name
            )
        if self.kind in (int, float):
            self._check_range(name, value)

    def _check_range(self, name: str, value: float) -> None:
        if not math.isfinite(value):
            raise BadParameterError(f"must be a finite number, not {value}", field=name)
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            raise BadParameterError(f"must be {self.bounds_text()}, not {_num(value)}", field=name)


_KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _num(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def _is_kind(value: Any, kind: type) -> bool:
    """Exact kinds: a bool is not a number, a float is not a whole number."""
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def knob(default: Any, help: str, kind: type, flag: str, **kw: Any) -> Any:
    """A dataclass field with ``default`` whose metadata holds its :class:`Knob`."""
    return field(default=default, metadata={"knob": Knob(help, kind, flag, **kw)})


def knob_of(f: Field) -> Knob:
    """The :class:`Knob` of a ``GenerationConfig`` field."""
    return f.metadata["knob"]
