"""Per-user values of the web UI: the piece, its undo history, and Stop requests.

:class:`Session` is what each browser tab keeps in its ``gr.State``: immutable, so
a callback returns a new one instead of changing the one another request may hold.
:class:`StopFlags` lives in the app object (one per ``build_app`` call), because a
Stop click arrives as a separate request while the generation's request is still
running and must reach it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HISTORY_LIMIT = 10  # versions kept for Undo: a few MIDI files, some kB each


@dataclass(frozen=True)
class Version:
    """One state of the piece: its MIDI bytes and how it was made.

    ``n_prompt_notes`` is how many of its first grid rows the user brought (or, after
    Extend, what existed before; after Regenerate bars, the notes kept); ``steps``
    records every generate/extend/infill with its full parameters, in order, so the
    piece can be replayed exactly. ``roles`` has one letter per row of its
    ``grid_notes``: ``p`` the user's prompt, ``k`` kept from before, ``n`` new ("" reads
    as the first ``n_prompt_notes`` prompt, the rest new); ``span`` is the regenerated
    ``(start_step, stop_step)`` of a Regenerate bars.
    """

    midi: bytes
    n_prompt_notes: int
    summary: str
    steps: tuple[dict[str, Any], ...] = ()
    prompt: dict[str, Any] | None = None  # name and sha256 of the uploaded prompt
    model: dict[str, Any] | None = None  # checkpoint path and checksum
    roles: str = ""
    span: tuple[int, int] | None = None


@dataclass(frozen=True)
class Session:
    """A user's history of versions, newest last, at most :data:`HISTORY_LIMIT` long."""

    history: tuple[Version, ...] = ()

    @property
    def current(self) -> Version | None:
        """The version on screen, or None before the first generation."""
        return self.history[-1] if self.history else None

    def push(self, version: Version) -> Session:
        """A session with ``version`` added, dropping the oldest past the limit."""
        return Session((*self.history, version)[-HISTORY_LIMIT:])

    def pop(self) -> Session:
        """A session without its newest version."""
        return Session(self.history[:-1])


@dataclass
class StopFlags:
    """Stop requests per browser session, checked by the generation's token callback.

    A flag exists only while that session's generation runs, so a Stop clicked when
    nothing runs cannot cancel the next generation.
    """

    _flags: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, session_id: str) -> Callable[[], bool]:
        """Mark a generation as running for ``session_id``; returns its "stop now?" check."""
        event = threading.Event()
        with self._lock:
            self._flags[session_id] = event
        return event.is_set

    def end(self, session_id: str) -> None:
        """Forget the flag of a finished generation."""
        with self._lock:
            self._flags.pop(session_id, None)

    def request(self, session_id: str) -> bool:
        """Ask the running generation of ``session_id`` to stop; False when none runs."""
        with self._lock:
            event = self._flags.get(session_id)
        if event is None:
            return False
        event.set()
        return True
