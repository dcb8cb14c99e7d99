"""List image files under local folders, streaming, with size and mtime.

Recognition is by content at decode time, not by extension, so every regular file is listed
unless it is obviously not an image (a short list of known non-image extensions is skipped
only when ``all_files`` is false).  Symlink loops and unreadable entries become failures.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import SourceError

__all__ = ["FileEntry", "ScanProblem", "walk"]

#: Extensions that are never images; anything else is opened and judged by its bytes.
SKIP_EXT = frozenset({
    ".txt", ".md", ".json", ".csv", ".xml", ".html", ".htm", ".py", ".js", ".css", ".pkl",
    ".zip", ".gz", ".tar", ".pdf", ".doc", ".docx", ".mp4", ".mov", ".avi", ".mkv", ".mp3",
    ".wav", ".sqlite", ".db", ".log", ".yaml", ".yml", ".toml", ".ini", ".sh", ".exe", ".dll",
})


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ScanProblem:
    path: str
    reason: str
    error: str


def walk(root: str, *, all_files: bool = False) -> Iterator[FileEntry | ScanProblem]:
    """Yield files under ``root`` in a deterministic (sorted) order.

    Directory symlinks are followed once; a loop back to a directory already being walked
    is reported as a :class:`ScanProblem`, as is any entry that cannot be read.
    """
    try:
        st = os.stat(root)
    except OSError as e:
        raise SourceError(f"cannot read {root!r}: {e.strerror}; check the path") from None
    if stat.S_ISREG(st.st_mode):
        yield FileEntry(root, st.st_size, st.st_mtime_ns)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{root!r} is neither a file nor a folder")
    yield from _walk_dir(root, {(st.st_dev, st.st_ino)}, all_files)


def _walk_dir(path: str, ancestors: set[tuple[int, int]], all_files: bool) -> Iterator[FileEntry | ScanProblem]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        yield ScanProblem(path, "unreadable-folder", f"cannot list folder: {err.strerror}")
        return
    for e in entries:
        p = e.path
        try:
            st = e.stat(follow_symlinks=True)
        except OSError as err:
            reason = "symlink-loop" if err.errno == 40 else "unreadable"
            yield ScanProblem(p, reason, f"cannot stat: {err.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                yield ScanProblem(p, "symlink-loop", "symbolic link loops back to a folder being scanned")
                continue
            yield from _walk_dir(p, ancestors | {key}, all_files)
        elif stat.S_ISREG(st.st_mode):
            if not all_files and os.path.splitext(e.name)[1].lower() in SKIP_EXT:
                continue
            yield FileEntry(p, st.st_size, st.st_mtime_ns)
