"""List image files under local folders, streaming, with size and mtime.

Recognition is by content at decode time, not by extension, so every regular file is listed
unless it is obviously not an image (a short list of known non-image extensions is skipped
only when ``all_files`` is false).  Symlink loops and unreadable entries become failures.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from ..errors import SourceError
from .base import FileEntry, ReadError, ScanProblem, skipped_name

__all__ = ["LocalSource", "read_local", "walk", "folder_key", "COMPILED", "Engine"]

try:  # the folder listing compiled at install where a C compiler was found (dir_loop.c)
    from .dir_loop import entries as _compiled_entries
except ImportError:  # pragma: no cover - no compiler at install: os.scandir lists
    _compiled_entries = None  # type: ignore[assignment]

#: whether folders are listed by the compiled loop
COMPILED = _compiled_entries is not None

Engine = Literal["auto", "scandir", "compiled"]


@dataclass(frozen=True, slots=True)
class LocalSource:
    """A local folder or file."""

    root: str
    all_files: bool = False
    #: folders not entered, by (device, inode) as :func:`folder_key` gives them (the scan's own cache)
    skip_dirs: frozenset[tuple[int, int]] = frozenset()

    def entries(self, *, on_skip: Callable[[str], None] | None = None) -> Iterator[FileEntry | ScanProblem]:
        return walk(self.root, all_files=self.all_files, on_skip=on_skip, skip_dirs=self.skip_dirs)


def folder_key(path: str) -> tuple[int, int]:
    """A folder's identity as :func:`walk` compares folders: (device, inode), the device
    number unsigned (``os.stat``'s is signed on some systems, the compiled listing's is not)."""
    st = os.stat(path)
    return st.st_dev % 2**64, st.st_ino


def read_local(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ReadError("vanished", "cannot read: the file was deleted after it was listed") from None
    except PermissionError as e:
        raise ReadError("denied", f"cannot read: {e.strerror}") from None
    except OSError as e:
        raise ReadError("unreadable", f"cannot read: {e.strerror}") from None


def walk(root: str, *, all_files: bool = False, on_skip: Callable[[str], None] | None = None,
         engine: Engine = "auto", skip_dirs: frozenset[tuple[int, int]] = frozenset()
         ) -> Iterator[FileEntry | ScanProblem]:
    """Yield files under ``root`` in a deterministic (sorted) order.

    Directory symlinks are followed once; a loop back to a directory already being walked
    is reported as a :class:`ScanProblem`, as is any entry that cannot be read.  A file passed
    over by its name (:data:`SKIP_EXT`) is told to ``on_skip``; a folder among ``skip_dirs``
    (:func:`folder_key`) is not entered.  ``engine``: "compiled" lists each
    folder with the compiled loop (:data:`COMPILED` says whether it is installed), "scandir" with
    ``os.scandir``, "auto" the first where it can; both yield the same entries.
    """
    if engine not in ("auto", "scandir", "compiled"):
        raise ValueError(f"engine must be 'auto', 'scandir' or 'compiled', not {engine!r}")
    if engine == "compiled" and _compiled_entries is None:
        raise RuntimeError("the compiled folder listing is not installed (no C compiler at install): "
                           "reinstall neardup where one is, or use engine='scandir'")
    try:
        st = os.stat(root)
    except OSError as e:
        raise SourceError(f"cannot read {root!r}: {e.strerror}; check the path") from None
    if stat.S_ISREG(st.st_mode):
        yield FileEntry(root, st.st_size, st.st_mtime_ns)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{root!r} is neither a file nor a folder")
    lister = _compiled_entries if engine != "scandir" and _compiled_entries is not None else _scandir_entries
    yield from _walk_dir(root, {(st.st_dev % 2**64, st.st_ino)}, all_files, on_skip, skip_dirs, lister)


#: one folder's entries, unsorted: (name, kind, size, mtime_ns, device, inode, errno), kind 1 a
#: regular file, 2 a folder, 0 anything else, -1 stat failed (errno says why); of a symbolic
#: link's target; the device number unsigned.  Raises OSError when the folder cannot be read.
Lister = Callable[[str], list[tuple[str, int, int, int, int, int, int]]]


def _scandir_entries(path: str) -> list[tuple[str, int, int, int, int, int, int]]:
    """The compiled loop's answer (dir_loop.c), by ``os.scandir``: the reference and the fallback."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=True)
            except OSError as err:
                out.append((e.name, -1, 0, 0, 0, 0, err.errno or 0))
                continue
            kind = 1 if stat.S_ISREG(st.st_mode) else 2 if stat.S_ISDIR(st.st_mode) else 0
            out.append((e.name, kind, st.st_size, st.st_mtime_ns, st.st_dev % 2**64, st.st_ino, 0))
    return out


def _walk_dir(path: str, ancestors: set[tuple[int, int]], all_files: bool, on_skip: Callable[[str], None] | None,
              skip_dirs: frozenset[tuple[int, int]], lister: Lister) -> Iterator[FileEntry | ScanProblem]:
    try:
        listed = lister(path)
    except OSError as err:
        yield ScanProblem(path, "unreadable-folder", f"cannot list folder: {err.strerror}")
        return
    listed.sort()  # by name: names are unique in a folder
    prefix = path if path.endswith(os.sep) else path + os.sep  # os.path.join's, as DirEntry.path
    for name, kind, size, mtime_ns, dev, ino, code in listed:
        p = prefix + name
        if kind == 1:
            if not all_files and skipped_name(name):
                if on_skip is not None:
                    on_skip(p)
                continue
            yield FileEntry(p, size, mtime_ns)
        elif kind == 2:
            key = (dev, ino)
            if key in ancestors:
                yield ScanProblem(p, "symlink-loop", "symbolic link loops back to a folder being scanned")
            elif key not in skip_dirs:
                yield from _walk_dir(p, ancestors | {key}, all_files, on_skip, skip_dirs, lister)
        elif kind < 0:
            reason = "symlink-loop" if code == errno.ELOOP else "unreadable"
            yield ScanProblem(p, reason, f"cannot stat: {os.strerror(code)}")
