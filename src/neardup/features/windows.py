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

__all__ = ["window_codes", "WINDOW_OFFSETS", "WINDOW_SIDE"]

#: window side, in layout cells (of 32)
WINDOW_SIDE = 28
#: (dy, dx) of each window; (2, 2) is the centre window, already searched as ``c64``
WINDOW_OFFSETS = tuple((dy, dx) for dy in (0, 2, 4) for dx in (0, 2, 4) if (dy, dx) != (2, 2))


def _canonical(sig: np.ndarray, canon: np.ndarray) -> np.ndarray:
    """Layouts turned to their canonical variant (flip left-right, then quarter turns ccw)."""
    out = np.where((canon >= 4)[:, None, None], sig[:, :, ::-1], sig)
    return np.stack([np.rot90(out[i], int(canon[i]) % 4) for i in range(len(out))]) if len(out) else out


def window_codes(sig: np.ndarray, canon: np.ndarray) -> np.ndarray:
    """(n, 8) uint64 codes of the eight side windows of (n, 32, 32) layouts, in the canonical
    orientation ``canon`` (n,): the median hash of each window's 8x8 lowest DCT block, the DC
    term left out, as the full-frame and centre-window codes are made."""
    n = len(sig)
    if not n:
        return np.zeros((0, len(WINDOW_OFFSETS)), np.uint64)
    lay = _canonical(np.asarray(sig, dtype=np.float32), np.asarray(canon, dtype=np.int64))
    d = dct_matrix(WINDOW_SIDE, 8).astype(np.float32)
    out = np.empty((n, len(WINDOW_OFFSETS)), np.uint64)
    for k, (dy, dx) in enumerate(WINDOW_OFFSETS):
        win = lay[:, dy : dy + WINDOW_SIDE, dx : dx + WINDOW_SIDE]
        coef = np.matmul(np.matmul(d, win), d.T).reshape(n, 64)
        med = np.median(coef[:, 1:], axis=1, keepdims=True)
        bits = coef > med
        bits[:, 0] = False
        out[:, k] = pack_bits(bits[:, None, :])[:, 0, 0]
    return out
