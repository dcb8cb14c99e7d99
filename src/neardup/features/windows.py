"""Crop windows: the 64-bit codes of windows of an image's layout, so the exact search finds a
crop of it by the crop's own full-frame code.

A crop of 80-95% per axis shows a window of the original; its full-frame code is the code of
that window, give or take a cell of placement and size.  The windows here cover that range:
sides of 26 and 29 of the 32 layout cells on each axis independently (a crop need not keep the
aspect ratio), each at the start, the middle and the end of the axis, 36 in all.  A window's
code is taken in the window's *own* canonical orientation, decided from its own coefficients
the way the crop's full-frame code is decided (features/orient.py): a crop towards one side
often flips a gradient sign, and so the orientation, that the whole image chose.  The crop's
ambiguous orientations are already indexed, so a window needs none of its own.

They are computed from the stored layout (``sig``) when the search loads its columns, so no
feature version changes and nothing more is stored.  ``eval/crops.py`` measures what each
family of windows finds, on crops and tilts of photos outside the dev set, and what it costs
in queries; docs/benchmarks.md ("Crop windows in fast mode") has the figures.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .hashes import dct_matrix, oriented_hash, variant_hashes
from .orient import canonical_variants

__all__ = ["Window", "WINDOWS", "window_family", "window_blocks", "window_codes", "window_variant_codes"]

#: the layout's side, in cells
SIDE = 32


class Window(NamedTuple):
    """A window of the layout: its top-left cell and its size, in cells."""

    y: int
    x: int
    h: int
    w: int


def window_family(sides: tuple[int, ...], positions: int = 3) -> tuple[Window, ...]:
    """Every window whose height and width are each one of ``sides``, at ``positions`` evenly
    spaced places along each axis (start to end)."""
    out = []
    for h in sides:
        for w in sides:
            ys = sorted({round(t * (SIDE - h) / max(positions - 1, 1)) for t in range(positions)})
            xs = sorted({round(t * (SIDE - w) / max(positions - 1, 1)) for t in range(positions)})
            out += [Window(y, x, h, w) for y in ys for x in xs]
    return tuple(out)


#: the windows searched (eval/crops.py compares families: this one finds 80-95% crops at any
#: place, in either aspect, within the radius of one of its windows)
WINDOWS = window_family((26, 28, 30))

#: layouts windowed at a time: bounds the float copies (~40 kB a layout for 36 windows)
CHUNK = 1024


def _placed(offset: int, size: int) -> np.ndarray:
    """(8, SIDE) DCT rows of a ``size`` window starting at ``offset``, zero outside it."""
    m = np.zeros((8, SIDE), np.float32)
    m[:, offset : offset + size] = dct_matrix(size, 8)
    return m


def window_blocks(sig: np.ndarray, windows: tuple[Window, ...] = WINDOWS) -> np.ndarray:
    """(n, len(windows), 8, 8) lowest DCT blocks of ``windows`` of (n, 32, 32) layouts (as
    stored, not turned).  All blocks come from two matrix products over the stack: the distinct
    row placements on one side, the column placements on the other."""
    n = len(sig)
    out = np.empty((n, len(windows), 8, 8), np.float32)
    if not n or not windows:
        return out
    row_keys = sorted({(w.y, w.h) for w in windows})
    col_keys = sorted({(w.x, w.w) for w in windows})
    rows = np.concatenate([_placed(*k) for k in row_keys])  # (8 * r, 32)
    cols = np.concatenate([_placed(*k) for k in col_keys])  # (8 * c, 32)
    at_row = {k: 8 * i for i, k in enumerate(row_keys)}
    at_col = {k: 8 * i for i, k in enumerate(col_keys)}
    for start in range(0, n, CHUNK):
        lay = np.asarray(sig[start : start + CHUNK], dtype=np.float32)
        k = len(lay)
        right = (lay.reshape(k * SIDE, SIDE) @ cols.T).reshape(k, SIDE, -1)  # (k, 32, 8c)
        both = np.tensordot(rows, right, axes=([1], [1]))  # (8r, k, 8c)
        for j, w in enumerate(windows):
            r0, c0 = at_row[(w.y, w.h)], at_col[(w.x, w.w)]
            out[start : start + k, j] = both[r0 : r0 + 8, :, c0 : c0 + 8].transpose(1, 0, 2)
    return out


def window_variant_codes(sig: np.ndarray, windows: tuple[Window, ...] = WINDOWS) -> np.ndarray:
    """(n, len(windows), 8) codes of every window in each of the 8 orientations (the variant
    order of the full-frame codes): which orientation of a window matched tells the crop test
    how the two images are turned, where the full-frame codes, scrambled by the crop, cannot."""
    blocks = window_blocks(sig, windows)
    n, k = blocks.shape[:2]
    return variant_hashes(blocks.reshape(n * k, 8, 8))[:, :, 0].reshape(n, k, 8)


def window_codes(sig: np.ndarray, windows: tuple[Window, ...] = WINDOWS) -> np.ndarray:
    """(n, len(windows)) uint64 codes of ``windows`` of (n, 32, 32) layouts (as stored, not
    turned): the median hash of each window's 8x8 lowest DCT block, the DC term left out, as
    the full-frame code is made, in the orientation the window's own block chooses."""
    out = np.empty((len(sig), len(windows)), np.uint64)
    for start in range(0, len(sig), CHUNK):
        blocks = window_blocks(sig[start : start + CHUNK], windows)
        k = len(blocks)
        flat = blocks.reshape(k * len(windows), 8, 8)
        canon, _ = canonical_variants(flat)
        out[start : start + k] = oriented_hash(flat, canon)[:, 0].reshape(k, len(windows))
    return out
