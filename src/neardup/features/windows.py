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

They are computed from the layout by the extractor (:func:`search_codes`, part of the feature
version) and stored with the other features, so a rerun reads them.  ``eval/crops.py`` measures what each
family of windows finds, on crops and tilts of photos outside the dev set, and what it costs
in queries; docs/benchmarks.md ("Crop windows in fast mode") has the figures.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .hashes import dct_matrix, oriented_hash, variant_hashes
from .loops import Engine, compiled_loops
from .orient import canonical_variant

__all__ = ["Window", "WINDOWS", "window_family", "window_blocks", "window_codes", "turned_window_codes", "oriented_codes",
           "window_variant_codes", "TILT_ANGLES", "tilted_layouts", "tilt_codes", "turned_tilt_codes", "frame_codes", "search_codes", "WINDOW_CODES"]

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

#: layouts windowed at a time: their float copies (~40 kB a layout) stay in the processor's
#: cache, where a chunk of 1,024 did not (docs/benchmarks.md, "Cheaper features, a compiled build")
CHUNK = 128


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
    row_at = np.array([row_keys.index((w.y, w.h)) for w in windows])
    col_at = np.array([col_keys.index((w.x, w.w)) for w in windows])
    for start in range(0, n, CHUNK):
        lay = np.asarray(sig[start : start + CHUNK], dtype=np.float32)
        k = len(lay)
        right = (lay.reshape(k * SIDE, SIDE) @ cols.T).reshape(k, SIDE, -1)  # (k, 32, 8c)
        both = np.matmul(rows, right)  # (k, 8r, 8c)
        grid = both.reshape(k, len(row_keys), 8, len(col_keys), 8)
        out[start : start + k] = grid[:, row_at, :, col_at].transpose(1, 0, 2, 3)
    return out


def window_variant_codes(sig: np.ndarray, windows: tuple[Window, ...] = WINDOWS) -> np.ndarray:
    """(n, len(windows), 8) codes of every window in each of the 8 orientations (the variant
    order of the full-frame codes): which orientation of a window matched tells the crop test
    how the two images are turned, where the full-frame codes, scrambled by the crop, cannot."""
    blocks = window_blocks(sig, windows)
    n, k = blocks.shape[:2]
    return variant_hashes(blocks.reshape(n * k, 8, 8))[:, :, 0].reshape(n, k, 8)


def oriented_codes(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, variants) of DCT blocks (N, 8, 8): each block's median hash (DC left out) in the
    canonical orientation its own coefficients choose, as a full-frame code is made."""
    canon = canonical_variant(blocks)
    return oriented_hash(blocks, canon)[:, 0], canon


def window_codes(sig: np.ndarray, windows: tuple[Window, ...] = WINDOWS) -> np.ndarray:
    """(n, len(windows)) uint64 codes of ``windows`` of (n, 32, 32) layouts (as stored, not
    turned): the median hash of each window's 8x8 lowest DCT block, the DC term left out, as
    the full-frame code is made, in the orientation the window's own block chooses."""
    return turned_window_codes(sig, windows)[0]


def turned_window_codes(sig: np.ndarray, windows: tuple[Window, ...] = WINDOWS) -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_codes` and the orientation each window's code was taken in, (n, W) uint8."""
    out = np.empty((len(sig), len(windows)), np.uint64)
    turn = np.empty((len(sig), len(windows)), np.uint8)
    for start in range(0, len(sig), CHUNK):
        blocks = window_blocks(sig[start : start + CHUNK], windows)
        k = len(blocks)
        codes, canon = oriented_codes(blocks.reshape(k * len(windows), 8, 8))
        out[start : start + k], turn[start : start + k] = codes.reshape(k, -1), canon.reshape(k, -1)
    return out, turn


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


@lru_cache(maxsize=32)
def _tilt_sampler(shape_key: int, angles: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Source cells (T * 4 * 1024,) and weights (T, 4, 1024) of every tilted, trimmed view of a
    layout of one aspect bin, the four bilinear taps side by side (pixel_loop.c's order)."""
    asp = float(np.exp(shape_key * ASPECT_STEP))
    index, weight = [], []
    for deg in angles:
        for keep_x, keep_y in _trims(deg, np.array([asp])):
            i00, i01, i10, i11, w00, w01, w10, w11 = _sampler(deg, float(keep_x[0]), float(keep_y[0]), asp)
            index.append(np.concatenate([i.ravel() for i in (i00, i01, i10, i11)]))
            weight.append(np.stack([w.ravel() for w in (w00, w01, w10, w11)]))
    return np.concatenate(index).astype(np.int32), np.stack(weight).astype(np.float32)


@lru_cache(maxsize=32)
def _tap_major(shape_key: int, angles: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_tilt_sampler` as (4, T * 1024) sources and weights: each tap of every view at once,
    so the NumPy loop gathers and weighs contiguous rows."""
    index, weight = _tilt_sampler(shape_key, angles)
    t = len(weight)
    return (index.reshape(t, 4, -1).transpose(1, 0, 2).reshape(4, -1).copy(),
            weight.transpose(1, 0, 2).reshape(4, -1).copy())


def tilted_layouts(sig: np.ndarray, aspect: np.ndarray, angles: tuple[float, ...] = TILT_ANGLES, *,
                   engine: Engine = "auto") -> np.ndarray:
    """(n, 2 * len(angles), 32, 32) layouts of what each image would look like tilted by each
    angle and trimmed each way (:func:`_trims`): bilinear samples of the stored layout, in
    pixel geometry (``aspect`` = width / height), so a tilted copy's own layout is one of them.

    ``engine``: each view's cell is ``((x0 * w0 + x1 * w1) + x2 * w2) + x3 * w3``, every product
    and sum rounded to float32, in the compiled loop (pixel_loop.c, which reads the taps in place)
    and in NumPy (which gathers each tap of every view first) alike, so both give the same views.
    """
    loops = compiled_loops(engine)
    lay = np.asarray(sig, dtype=np.float32).reshape(len(sig), SIDE * SIDE)
    n, t = len(lay), 2 * len(angles)
    out = np.empty((n, t, SIDE, SIDE), np.float32)
    shape = np.round(np.log(np.maximum(np.asarray(aspect, dtype=np.float64).reshape(n), 1e-3)) / ASPECT_STEP)
    for key in np.unique(shape).tolist():
        rows = np.flatnonzero(shape == key)
        part = np.ascontiguousarray(lay if len(rows) == n else lay[rows])  # the compiled loop reads it flat
        if loops is not None:
            views = np.empty((len(rows), t, SIDE, SIDE), np.float32)
            loops.tilt(part, *_tilt_sampler(int(key), tuple(angles)), views)
        else:
            index, weight = _tap_major(int(key), tuple(angles))
            views = part[:, index[0]]
            views *= weight[0]
            for q in (1, 2, 3):
                tap = part[:, index[q]]
                tap *= weight[q]
                views += tap
        out[rows] = views.reshape(len(rows), t, SIDE, SIDE)
    return out


def tilt_codes(sig: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """(n, 2 * len(TILT_ANGLES)) full-frame codes of :func:`tilted_layouts`, each in its own
    canonical orientation, as the tilted copy's own code is made."""
    return turned_tilt_codes(sig, aspect)[0]


def turned_tilt_codes(sig: np.ndarray, aspect: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tilt_codes` and the orientation each was taken in, (n, T) uint8."""
    n, t = len(sig), 2 * len(TILT_ANGLES)
    out = np.empty((n, t), np.uint64)
    turn = np.empty((n, t), np.uint8)
    for start in range(0, n, TILT_CHUNK):
        part = tilted_layouts(sig[start : start + TILT_CHUNK], aspect[start : start + TILT_CHUNK])
        out[start : start + len(part)], turn[start : start + len(part)] = frame_codes(part)
    return out, turn


def frame_codes(layouts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, orientations) of stacks of whole layouts (..., 32, 32), each code made as a
    full-frame code is, in its own canonical orientation."""
    whole = dct_matrix(SIDE, 8)
    lead = layouts.shape[:-2]
    blocks = np.matmul(np.matmul(whole, np.asarray(layouts, np.float32).reshape(-1, SIDE, SIDE)), whole.T)
    codes, canon = oriented_codes(blocks)
    return codes.reshape(lead), canon.reshape(lead)


#: layouts tilted at a time: their 12 views stay in the processor's cache (~600 kB)
TILT_CHUNK = 64

#: the window codes an image carries: one per crop window, then one per tilted frame
WINDOW_CODES = len(WINDOWS) + 2 * len(TILT_ANGLES)


def search_codes(sig: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """(n, WINDOW_CODES) uint64: the codes the exact search queries besides the full frame and
    the centre (every crop window, then every tilted frame), made by the extractor."""
    if not len(sig):
        return np.zeros((0, WINDOW_CODES), np.uint64)
    return np.hstack([window_codes(sig), tilt_codes(sig, np.asarray(aspect, dtype=np.float64))])
