"""One exception hierarchy for everything neardup raises on purpose."""

from __future__ import annotations

__all__ = [
    "NeardupError",
    "UsageError",
    "SourceError",
    "DecodeError",
    "CacheError",
]


class NeardupError(Exception):
    """Base class: catch this to handle any error neardup raises deliberately."""


class UsageError(NeardupError, ValueError):
    """A bad option or argument; the message says what to change."""


class SourceError(NeardupError):
    """A source (folder, bucket) cannot be listed or read as a whole."""


class DecodeError(NeardupError):
    """One file cannot be turned into features; recorded as a failure, never fatal.

    ``reason`` is a short machine-readable slug (``"not-an-image"``, ``"truncated"``,
    ``"too-many-pixels"`` ...) and the message is for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CacheError(NeardupError):
    """The feature cache cannot be opened or is from an incompatible version."""
