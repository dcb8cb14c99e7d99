"""Sources of images: local folders and files, Azure Blob and S3 prefixes.

A source lists entries (:class:`FileEntry`: a path or URL with its change stamp); reading is
one function of the path, :func:`read_bytes`, so whichever process holds a path can read it.
"""

from __future__ import annotations

from ..errors import UsageError
from .base import FileEntry, ReadError, ScanProblem, Source, shown_name, utf8_name
from .cloud import CloudSource, configure, is_remote, parse_url, read_blob, scrub
from .local import LocalSource, folder_key, read_local, walk

__all__ = ["FileEntry", "ReadError", "ScanProblem", "Source", "check_root", "configure", "folder_key", "is_remote",
           "open_source", "read_bytes", "scrub", "shown_name", "utf8_name", "walk"]


def check_root(root: str) -> None:
    """Raise a usage error for a malformed blob URL, or a path that is not valid UTF-8 (the
    store and results.json hold paths as text), before anything starts (nothing is opened)."""
    if is_remote(root):
        parse_url(root)
    elif not utf8_name(root):
        raise UsageError(f"{shown_name(root)!r} is not valid UTF-8 (its stray bytes shown as \\xNN): rename it, or "
                         "scan the folder above it (then each file under it is a failure row)")


def open_source(root: str, *, all_files: bool = False, skip_dirs: frozenset[tuple[int, int]] = frozenset()) -> Source:
    """The source for ``root``: ``az://``, ``abfs[s]://`` and ``s3://`` URLs, else a local path
    (whose folders among ``skip_dirs``, by :func:`folder_key`, are not entered)."""
    if is_remote(root):
        parse_url(root)
        return CloudSource(root, all_files)
    return LocalSource(root, all_files, skip_dirs)


def read_bytes(path: str) -> bytes:
    """All bytes of the file or blob at ``path``; raises :class:`ReadError` with a reason."""
    return read_blob(path) if is_remote(path) else read_local(path)
