"""Which file to keep when the images tie: the facts a user's tools leave on files.

Byte-identical files tie on every image fact, and so, nearly, do a photo and its lossless or
same-quality re-saves.  What tells the original then is what copying leaves behind:

0. a file under a ``--reference`` root (the user's master archive) before any other;
1. the folder the user named first (``neardup scan ARCHIVE/ NEW/`` says where the originals are);
2. a name that says it is a copy: ``x - Copy``, ``Copy of x``, ``x copy 2``, ``x (1)``,
   ``x_edited``, ``x-small``, ``x_thumb``, ``x~`` ... (what file managers, browsers, phones and
   editors write; plain numbering such as ``IMG_0001`` is not a mark);
3. the older modification time (``cp``, downloads and exports stamp the copy with the time they
   made it; tools that keep times tie here and fall through);
4. the shorter name, then the path order, so the choice is always stated and repeatable.

:func:`file_preference` turns these into a sort key; :func:`why_preferred` names the one that
decided between two files, for the group's ``reason``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..results import lies_under

__all__ = ["FileFacts", "copy_mark", "file_preference", "why_preferred", "root_index", "under_any"]

#: marks that copying tools and editors add to a file's stem (matched case-insensitively)
_COPY_MARK = re.compile(
    r"""(?ix)
      (?:^|[\s_.\-(])copy(?:\s*\d+)?(?:\)|$|[\s_.\-])   # x - Copy, x copy 2, x_copy, x (copy), Copy of x
    | (?:^|[\s_.\-])copy[\s_]of[\s_]                      # Copy of x, copy_of_x
    | \(\d+\)$                                            # x (1), x(2): downloads, exports
    | [\s_.\-](?:edit|edited|small|thumb|thumbnail|resized|scaled|compressed|preview|lowres)(?:$|[\s_.\-\d])
    | [\s_.\-]\d{2,4}x\d{2,4}$                            # x-300x200: a CMS's resized rendition
    | ~$|\.bak$|\.orig$
    """,
)


def copy_mark(path: str) -> str | None:
    """The part of the file's stem that says it is a copy, or None."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    m = _COPY_MARK.search(stem)
    return m.group(0).strip(" _.-()") or m.group(0) if m else None


@dataclass(frozen=True, slots=True)
class FileFacts:
    """One file of a content: where it is and when it was last changed."""

    path: str
    size: int
    mtime_ns: int
    root: int  # index of the scanned root it was listed under (0: the first the user named)
    reference: bool = False  # under a --reference root: always kept, never acted on


def root_index(path: str, roots: Sequence[str]) -> int:
    """The first of ``roots`` (as the user gave them) that ``path`` lies under."""
    for i, r in enumerate(roots):
        if lies_under(path, r):
            return i
    return len(roots)


def under_any(path: str, roots: Sequence[str]) -> bool:
    """Whether ``path`` (as listed) lies under one of ``roots`` (as the user gave them)."""
    return any(lies_under(path, r) for r in roots)


def file_preference(f: FileFacts) -> tuple[int, int, int, int, int, str]:
    """Sort key, smallest first: the file to keep among files that tie on the image."""
    name = os.path.basename(f.path.rstrip("/"))
    return (int(not f.reference), f.root, int(copy_mark(f.path) is not None), f.mtime_ns, len(name), f.path)


def why_preferred(kept: FileFacts, other: FileFacts, roots: Sequence[str]) -> str:
    """The fact that put ``kept`` before ``other``, in words."""
    if kept.reference != other.reference:
        return "under a --reference root (reference files are always kept)"
    if kept.root != other.root:
        return f"in {roots[kept.root]!r}, named first on the command line" if kept.root < len(roots) else \
            "in the folder named first"
    mk, mo = copy_mark(kept.path), copy_mark(other.path)
    if mk is None and mo is not None:
        return f"the other name says it is a copy ({mo!r})"
    if kept.mtime_ns != other.mtime_ns:
        return "the older file (modification time)"
    if len(os.path.basename(kept.path)) != len(os.path.basename(other.path)):
        return "the shorter name (nothing else tells them apart)"
    return "first in path order (nothing else tells them apart)"
