"""User-facing errors.

Anything a user can get wrong (a path, a parameter, a file's content) raises a
:class:`TunesmithError` whose message is one line naming the culprit. The CLI
prints it and exits with code 2; the web UI shows it in the page.
"""

from __future__ import annotations


class TunesmithError(Exception):
    """A problem with the user's input, reported as one line, never a traceback."""


class BadMidiError(TunesmithError):
    """A MIDI file that cannot be used: unreadable, hostile, or without notes."""


class BadParameterError(TunesmithError, ValueError):
    """A parameter outside its allowed range or contradicting another one.

    With ``field`` (a ``GenerationConfig`` field's name) the message reads
    ``"field: reason"``; front ends that spell the field otherwise (the CLI's
    ``--flag``) rebuild it from :attr:`field` and :attr:`reason`.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class BadCheckpointError(TunesmithError):
    """A path that is not a (compatible) tunesmith checkpoint."""
