"""Crop windows: the 64-bit codes of eight off-centre windows of an image's layout, so the
exact search finds a crop of it by the crop's own full-frame code.

A crop of 82-95% per axis shows a window of the original; its full-frame code is the code of
that window, give or take a cell.  The centre window (``c64``, 87.5% a side) finds the crops
taken near the middle; these eight find the ones taken towards a side or a corner: windows of
28 of the 32 layout cells a side at offsets 0, 2 and 4 on each axis (the centre one is
``c64``).  They are computed from the stored layout (``sig``) when the search loads its
columns, in the image's canonical orientation, so no feature version changes and nothing more
is stored.  ``eval/windows.py`` measures what they find.
"""

from __future__ import annotations

import numpy as np

from .hashes import dct_matrix, pack_bits
from .orient import orient_layouts

__all__ = ["window_codes", "WINDOW_OFFSETS", "WINDOW_SIDE"]

#: window side, in layout cells (of 32)
WINDOW_SIDE = 28
#: (dy, dx) of each window; (2, 2) is the centre window, already searched as ``c64``
WINDOW_OFFSETS = tuple((dy, dx) for dy in (0, 2, 4) for dx in (0, 2, 4) if (dy, dx) != (2, 2))


#: layouts turned and windowed at a time: bounds the float copies (~4 kB a layout each)
CHUNK = 1024


def _placed(offset: int) -> np.ndarray:
    """(8, 32) DCT rows of a WINDOW_SIDE window starting at ``offset``, zero outside it."""
    m = np.zeros((8, 32), np.float32)
    m[:, offset : offset + WINDOW_SIDE] = dct_matrix(WINDOW_SIDE, 8)
    return m


def window_codes(sig: np.ndarray, canon: np.ndarray) -> np.ndarray:
    """(n, 8) uint64 codes of the eight side windows of (n, 32, 32) layouts, in the canonical
    orientation ``canon`` (n,): the median hash of each window's 8x8 lowest DCT block, the DC
    term left out, as the full-frame and centre-window codes are made.  Every window's block is
    one pair of matrix products over the whole stack (rows and columns of the three offsets)."""
    n = len(sig)
    out = np.empty((n, len(WINDOW_OFFSETS)), np.uint64)
    offsets = sorted({o for pair in WINDOW_OFFSETS for o in pair})
    rows = np.concatenate([_placed(o) for o in offsets])  # (8 * offsets, 32)
    at = {o: 8 * i for i, o in enumerate(offsets)}
    canon = np.asarray(canon, dtype=np.int64)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        lay = orient_layouts(np.asarray(sig[part], dtype=np.float32), canon[part])
        k = len(lay)
        right = (lay.reshape(k * 32, 32) @ rows.T).reshape(k, 32, -1)  # (k, 32, 8 * offsets)
        both = np.tensordot(rows, right, axes=([1], [1]))  # (8 * offsets, k, 8 * offsets)
        for j, (dy, dx) in enumerate(WINDOW_OFFSETS):
            coef = both[at[dy] : at[dy] + 8, :, at[dx] : at[dx] + 8].transpose(1, 0, 2).reshape(k, 64)
            median = np.partition(coef[:, 1:], 31, axis=1)[:, 31:32]  # 63 values: the exact median
            bits = coef > median
            bits[:, 0] = False
            out[part, j] = pack_bits(bits[:, None, :])[:, 0, 0]
    return out
