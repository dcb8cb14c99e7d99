"""Columns too large to hold for a whole run: arrays in an unlinked temporary file, mapped
shared, whose pages are dropped from the process after each pass over them.

The crop-window and tilted-frame codes of a million rows are 744 MB; held as an ordinary array
they were most of a scan's memory.  Mapped from a file, the pages a pass touches count in the
process's memory only until :func:`release_pages`; the data stays in the file and the kernel's
page cache, which the system reclaims as it needs (docs/benchmarks.md, "A million images").
"""

from __future__ import annotations

import mmap
import os
import tempfile

import numpy as np

__all__ = ["SPILL_BYTES", "CHUNK_ROWS", "spilled_zeros", "release_pages"]

#: arrays up to this size are ordinary ones: a file mapping saves nothing worth its page faults
SPILL_BYTES = 64 * 2**20
#: rows of a spilled column copied in or out at a time (48 MB of window codes)
CHUNK_ROWS = 65_536


def spilled_zeros(shape: tuple[int, ...], dtype: np.dtype | type, *, folder: str | os.PathLike[str] | None = None
                  ) -> np.ndarray:
    """A zero-filled array of ``shape``: above SPILL_BYTES backed by an unlinked file in
    ``folder`` (the system's temporary folder if None), else an ordinary array."""
    dt = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if size <= SPILL_BYTES:
        return np.zeros(shape, dt)
    with tempfile.TemporaryFile(dir=folder) as f:  # unlinked: nothing is left behind, even by a crash
        f.truncate(size)
        mapped = mmap.mmap(f.fileno(), size)
    return np.frombuffer(mapped, dt).reshape(shape)


def release_pages(arr: np.ndarray) -> None:
    """Drop the pages of the file mapping behind ``arr`` (any view of a :func:`spilled_zeros`
    array) from this process's memory; the data stays in the file.  A no-op for other arrays."""
    base: object = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)
