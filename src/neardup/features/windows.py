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

__all__ = ["Window", "WINDOWS", "window_family", "window_blocks", "window_codes", "window_variant_codes", "TILT_ANGLES",
           "tilted_layouts", "tilt_codes"]

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


#: tilts searched, in degrees: a straightened or tilted copy within about 1.25 degrees of one
#: of them keeps its code within the radius (eval/crops.py measures the tilts found)
TILT_ANGLES = (-7.5, -5.0, -2.5, 2.5, 5.0, 7.5)


def _trims(degrees: float, aspect: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image, the kept share (x, y) of the frame after a tilt, by the two ways tools trim
    the corners a rotation exposes: the largest centred rectangle of the same aspect (a
    "straighten" tool), and a cut that removes the corner wedges along both axes (the frame
    less twice each wedge's depth)."""
    t = np.radians(abs(degrees))
    c, s = np.cos(t), np.sin(t)
    same = np.minimum(1.0 / (c + s / aspect), 1.0 / (c + s * aspect))
    wedge_x = np.clip(1.0 - 2.0 * s / aspect, 0.5, 1.0)
    wedge_y = np.clip(1.0 - 2.0 * s * aspect, 0.5, 1.0)
    return [(same, same), (wedge_x, wedge_y)]


#: aspect ratios are taken in steps of 2% (of log width / height) so images of one shape share
#: their sampling grids: a 1% error of aspect moves a corner cell by a tenth of a cell
ASPECT_STEP = 0.02


def _sampler(degrees: float, keep_x: float, keep_y: float, aspect: float) -> tuple[np.ndarray, ...]:
    """Bilinear source cells and weights of the tilted, trimmed view of a layout."""
    grid = (np.arange(SIDE) + 0.5) / SIDE - 0.5
    t = np.radians(degrees)
    x = grid[None, :] * keep_x * aspect  # in units of the image height, about the centre
    y = grid[:, None] * keep_y
    xs, ys = np.cos(t) * x - np.sin(t) * y, np.sin(t) * x + np.cos(t) * y
    fx = np.clip((xs / aspect + 0.5) * SIDE - 0.5, 0, SIDE - 1)
    fy = np.clip((ys + 0.5) * SIDE - 0.5, 0, SIDE - 1)
    x0, y0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, SIDE - 1), np.minimum(y0 + 1, SIDE - 1)
    ax, ay = (fx - x0).astype(np.float32), (fy - y0).astype(np.float32)
    return y0 * SIDE + x0, y0 * SIDE + x1, y1 * SIDE + x0, y1 * SIDE + x1, (1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay


def tilted_layouts(sig: np.ndarray, aspect: np.ndarray, angles: tuple[float, ...] = TILT_ANGLES) -> np.ndarray:
    """(n, 2 * len(angles), 32, 32) layouts of what each image would look like tilted by each
    angle and trimmed each way (:func:`_trims`): bilinear samples of the stored layout, in
    pixel geometry (``aspect`` = width / height), so a tilted copy's own layout is one of them."""
    lay = np.asarray(sig, dtype=np.float32).reshape(len(sig), SIDE * SIDE)
    n = len(lay)
    out = np.empty((n, 2 * len(angles), SIDE, SIDE), np.float32)
    shape = np.round(np.log(np.maximum(np.asarray(aspect, dtype=np.float64).reshape(n), 1e-3)) / ASPECT_STEP)
    for key in np.unique(shape):
        rows = np.flatnonzero(shape == key)
        asp = float(np.exp(key * ASPECT_STEP))
        part = lay[rows]
        k = 0
        for deg in angles:
            for keep_x, keep_y in _trims(deg, np.array([asp])):
                i00, i01, i10, i11, w00, w01, w10, w11 = _sampler(deg, float(keep_x[0]), float(keep_y[0]), asp)
                out[rows, k] = part[:, i00] * w00 + part[:, i01] * w01 + part[:, i10] * w10 + part[:, i11] * w11
                k += 1
    return out


def tilt_codes(sig: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """(n, 2 * len(TILT_ANGLES)) full-frame codes of :func:`tilted_layouts`, each in its own
    canonical orientation, as the tilted copy's own code is made."""
    out = np.empty((len(sig), 2 * len(TILT_ANGLES)), np.uint64)
    whole = (Window(0, 0, SIDE, SIDE),)
    for start in range(0, len(sig), CHUNK // 4):
        part = tilted_layouts(sig[start : start + CHUNK // 4], aspect[start : start + CHUNK // 4])
        k, t = part.shape[:2]
        out[start : start + k] = window_codes(part.reshape(k * t, SIDE, SIDE), whole).reshape(k, t)
    return out
