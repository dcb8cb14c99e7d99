"""Columns too large to hold for a whole run: arrays in an unlinked temporary file, mapped
shared, whose pages are dropped from the process after each pass over them.

The crop-window and tilted-frame codes of a million rows are 744 MB; held as an ordinary array
they were most of a scan's memory.  Mapped from a file, the pages a pass touches count in the
process's memory only until :func:`release_pages`; the data stays in the file and the kernel's
page cache, which the system reclaims as it needs (docs/benchmarks.md, "Window codes out of memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import os
import tempfile
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["SPILL_BYTES", "CHUNK_ROWS", "GATHER_BYTES", "spilled_zeros", "release_pages", "take_rows",
           "return_freed_memory"]

logger = logging.getLogger(__name__)

#: arrays up to this size are ordinary ones: a file mapping saves nothing worth its page faults
SPILL_BYTES = 64 * 2**20
#: rows of a spilled column copied in or out at a time (48 MB of window codes)
CHUNK_ROWS = 65_536


#: bytes of a mapped column read between page releases when rows are gathered from it
#: (:func:`take_rows`): a read fault maps the pages around it too, a whole large folio of the
#: page cache (up to 2 MB) on recent kernels, so scattered rows map far more than themselves
GATHER_BYTES = 32 * 2**20


def spilled_zeros(shape: tuple[int, ...], dtype: np.dtype | type, *, folder: str | os.PathLike[str] | None = None
                  ) -> np.ndarray:
    """A zero-filled array of ``shape``: above SPILL_BYTES backed by an unlinked file in
    ``folder`` (the system's temporary folder if None), else an ordinary array."""
    dt = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if size <= SPILL_BYTES:
        return np.zeros(shape, dt)
    try:
        with tempfile.TemporaryFile(dir=folder) as f:  # unlinked: nothing is left behind, even by a crash
            if hasattr(os, "posix_fallocate"):
                # the blocks are reserved now: a full disk is an error here, not a SIGBUS when a
                # page of the mapping is first written
                os.posix_fallocate(f.fileno(), 0, size)
            else:  # pragma: no cover - platforms without posix_fallocate
                f.truncate(size)
            mapped = mmap.mmap(f.fileno(), size)
    except OSError as e:  # no room for the file: held in memory, as before there was a file
        logger.warning("could not spill %d MB to %s (%s); holding it in memory", size >> 20,
                       folder or tempfile.gettempdir(), e)
        return np.zeros(shape, dt)
    return np.frombuffer(mapped, dt).reshape(shape)


def release_pages(arr: np.ndarray) -> None:
    """Drop the pages of the file mapping behind ``arr`` (any view of a :func:`spilled_zeros`
    array, or of a read-only ``np.load(..., mmap_mode="r")``) from this process's memory; the
    data stays in the file and is read back on the next touch.  A no-op for an array that no
    mapping backs.  Never for a copy-on-write mapping (``mmap_mode="c"``): its changes would go."""
    mapped = _mapping(arr)
    if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def take_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``arr[rows]``, a copy; when a file mapping backs ``arr`` it is read a span of
    :data:`GATHER_BYTES` of the file at a time, its pages released after each
    (:func:`release_pages`).  Gathered at once, the scattered rows of one crop batch's tilt
    codes mapped nearly the whole file of a million rows' window codes for an instant
    (benchmarks/gather_pages.py, docs/benchmarks.md "The million's spike")."""
    rows = np.asarray(rows, dtype=np.int64)
    stride = abs(arr.strides[0]) if arr.ndim and arr.strides else 0
    if _mapping(arr) is None or not len(rows) or not stride:
        out = np.array(arr[rows])
        release_pages(arr)
        return out
    order = np.argsort(rows, kind="stable")
    ascending = rows[order]
    span = max(1, GATHER_BYTES // stride)  # rows a span of the file holds
    cuts = np.searchsorted(ascending, np.arange(ascending[0] // span + 1, ascending[-1] // span + 1) * span)
    out = np.empty((len(rows), *arr.shape[1:]), arr.dtype)
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(rows)]):
        if hi > lo:
            out[order[lo:hi]] = arr[ascending[lo:hi]]
            release_pages(arr)
    return out


def _mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The memory map behind ``arr``, if any."""
    base: object = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None


@lru_cache(maxsize=1)
def _libc() -> Any:
    """The C library, where it has glibc's ``malloc_trim`` (None elsewhere)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def return_freed_memory() -> None:
    """Give the memory the C allocator holds free back to the system (glibc's ``malloc_trim``;
    a no-op elsewhere).  Each thread that allocates gets an arena of its own, and an array of
    a few MB freed in one arena is kept there for that thread, so a search whose query, crop
    and verify threads each freed their last block held memory no array used (docs/benchmarks.md,
    "Memory at a million").  Called between blocks of work, not inside."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
