"""What every source yields and raises: entries with a change stamp, problems, read errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ..errors import SourceError

__all__ = ["FileEntry", "ScanProblem", "ReadError", "Source", "SKIP_EXT", "skipped_name", "utf8_name", "shown_name"]

#: Extensions that are never images; anything else is opened and judged by its bytes.
SKIP_EXT = frozenset({
    ".txt", ".md", ".json", ".csv", ".xml", ".html", ".htm", ".py", ".js", ".css", ".pkl",
    ".zip", ".gz", ".tar", ".pdf", ".doc", ".docx", ".mp4", ".mov", ".avi", ".mkv", ".mp3",
    ".wav", ".sqlite", ".db", ".log", ".yaml", ".yml", ".toml", ".ini", ".sh", ".exe", ".dll",
})


def utf8_name(path: str) -> bool:
    """Whether ``path`` is valid UTF-8 text: ``os.fsdecode`` keeps a name's other bytes as lone
    surrogates, which the store and results.json cannot hold."""
    if path.isascii():
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(path: str) -> str:
    """``path`` with the bytes that are not UTF-8 written ``\\xNN``: text a report can hold."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def skipped_name(name: str) -> bool:
    """Whether a file name has one of :data:`SKIP_EXT` (``os.path.splitext``'s rule, at a tenth
    of its cost: a listing asks it of every file)."""
    i = name.rfind(".")
    return i > 0 and name[i:].lower() in SKIP_EXT


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One listed file or blob.

    ``path`` is what results report (a local path, or a URL such as ``az://c/key``);
    ``size``, ``mtime_ns`` and ``etag`` (blobs only) are the stamp the cache trusts: if any
    of them differs from the cached record, the file is read again.
    """

    path: str
    size: int
    mtime_ns: int
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class ScanProblem:
    path: str
    reason: str
    error: str


class ReadError(SourceError):
    """One file or blob could not be read.

    ``reason``: ``"vanished"`` (deleted since listing), ``"denied"``, ``"unreadable"``, or
    ``"unreachable"`` (a transient fault that outlasted the retries: never cached, so a rerun
    tries again).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # survives a process pool
        return (type(self), (self.reason, str(self)))


class Source(Protocol):
    """A place images are listed from; reading goes through :func:`neardup.sources.read_bytes`
    by path, so any process (a pool worker, a cluster node) can read what the driver listed."""

    @property
    def root(self) -> str:
        """What the user gave: a folder, a file or a URL prefix."""
        ...

    def entries(self, *, on_skip: Callable[[str], None] | None = None) -> Iterator[FileEntry | ScanProblem]:
        """Yield entries lazily, in a deterministic order; raise SourceError if the source as a
        whole cannot be listed.  Files passed over by their name (known non-image extensions)
        are told to ``on_skip``."""
        ...
