"""Slot codes: what the picture of an image looks like, for images whose picture sits in a flat
surround (a screenshot of an app, a slide, a photo on a plain page).

Screenshots of one app share most of their frame, so their full-frame codes are all within the
search radius of each other: the exact search pairs every two of them (a quadratic count of
candidates for thousands of screenshots) and only the shared-frame guard would stand between
them and a group.  The picture is what tells them apart.  An image is *framed* when at least
``FLAT_SHARE`` of its layout is dead flat (cells within ``FLAT_STEP`` grey levels of their
neighbours: interface backgrounds and page colour, which no photograph has that much of) and its
largest region of texture (cells that change in both directions, so the edges of bars and text
lines do not count; opened with a 3x3 square, so thin text and small icons do not either) spans
``MIN_BOX``-``MAX_BOX`` of the frame.  Its slot code is a 4x4 grid of the mean grey levels of
that box's inner part (``INSET`` of each side left out: the box is found to a cell, and a cell's
jitter must not move the grid), normalised for tone and packed at 4 bits a cell.  Two framed
images are candidates only when their slot codes agree (candidates/search.py): another copy of
a screenshot shows the same picture, another screenshot of the app another one.

``eval/templates.py`` measures it: how many template images are framed, and the candidate pairs
and false pairs per image as a template's population grows (docs/benchmarks.md, "Framed
images"); on the dev set's photographs almost none are framed.
"""

from __future__ import annotations

import numpy as np

from .windows import SIDE

__all__ = ["slot_codes", "slot_grid", "slot_distance", "content_boxes", "FLAT_STEP", "FLAT_SHARE", "TEXTURE_STEP",
           "MIN_BOX", "MAX_BOX", "SLOT_MAX"]

#: grey levels a dead-flat cell may differ from each of its neighbours by (a cell is the mean
#: of 10-30 pixels: JPEG noise on a flat colour averages well under one level)
FLAT_STEP = 1.0
#: share of dead-flat cells from which an image may be framed: app frames and slides of the own
#: populations have 0.2-0.55 (median 0.4); the dev set's photographs a median of 0.01
FLAT_SHARE = 0.3
#: grey levels a textured cell changes by towards a neighbour, along both axes
TEXTURE_STEP = 2.0
#: the picture's box, as a share of the frame: below, too little to tell pictures apart by;
#: above, the surround is too thin to matter and the full frame does as well
MIN_BOX, MAX_BOX = 0.05, 0.7
#: label propagation steps (a 32x32 region is joined in under 32)
_STEPS = 40


def _steps(layout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, s, s) largest absolute step to a horizontal and to a vertical neighbour."""
    x = np.asarray(layout, np.float32)
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    dx, dy = np.abs(np.diff(x, axis=2)), np.abs(np.diff(x, axis=1))
    gx[:, :, 1:] = dx
    gx[:, :, :-1] = np.maximum(gx[:, :, :-1], dx)
    gy[:, 1:, :] = dy
    gy[:, :-1, :] = np.maximum(gy[:, :-1, :], dy)
    return gx, gy


def _shift_all(m: np.ndarray, fill: bool, combine: np.ufunc) -> np.ndarray:
    """``combine`` of the 3x3 neighbourhood of each cell of (n, s, s) masks or labels."""
    s = m.shape[1]
    p = np.pad(m, ((0, 0), (1, 1), (1, 1)), constant_values=fill)
    out = m.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out = combine(out, p[:, dy : dy + s, dx : dx + s])
    return out


def _largest_region(mask: np.ndarray) -> np.ndarray:
    """(n, s, s) mask of each image's largest 8-connected region of ``mask``."""
    n, s, _ = mask.shape
    labels = np.where(mask, np.arange(1, n * s * s + 1, dtype=np.int64).reshape(n, s, s), 0)
    for _ in range(_STEPS):
        grown = np.where(mask, _shift_all(labels, False, np.maximum), 0)
        if np.array_equal(grown, labels):
            break
        labels = grown
    flat = labels.reshape(n, -1)
    out = np.zeros_like(mask)
    for i in range(n):
        ids, counts = np.unique(flat[i][flat[i] > 0], return_counts=True)
        if len(ids):
            out[i] = labels[i] == ids[np.argmax(counts)]
    return out


def content_boxes(layout: np.ndarray) -> np.ndarray:
    """(n, 4) int64 top, left, height, width (cells) of each framed image's picture region,
    zeros where the image is not framed."""
    lay = np.asarray(layout, np.float32)
    n, s = len(lay), lay.shape[1] if lay.ndim == 3 else SIDE
    out = np.zeros((n, 4), np.int64)
    if not n:
        return out
    gx, gy = _steps(lay)
    flat = (np.maximum(gx, gy) <= FLAT_STEP).mean(axis=(1, 2)) >= FLAT_SHARE
    rows = np.flatnonzero(flat)
    if not len(rows):
        return out
    textured = (gx[rows] > TEXTURE_STEP) & (gy[rows] > TEXTURE_STEP)
    opened = _shift_all(_shift_all(textured, True, np.logical_and), False, np.logical_or)
    region = _largest_region(opened)
    for k, r in enumerate(rows.tolist()):
        ys, xs = np.nonzero(region[k])
        if not len(ys):
            continue
        top, left, h, w = int(ys.min()), int(xs.min()), int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        if MIN_BOX <= h * w / (s * s) <= MAX_BOX and min(h, w) >= 4:
            out[r] = (top, left, h, w)
    return out


#: the share of each side of the box left out of the slot grid
INSET = 0.15
#: cells a side of the slot grid
GRID = 4
#: mean difference of the slot grids' cells (on the 1-15 scale) from which two framed images
#: show different pictures: copies of one screenshot (re-saved, resized, sharpened, captioned)
#: 0-0.75 but for 2 in 32, screenshots of one app with other pictures 0.94 and up, 1% under 1.5
#: (eval/templates.py --templates 60 --seed 6)
SLOT_MAX = 1.2


def _area_rows(lo: float, hi: float) -> np.ndarray:
    """(GRID, SIDE) weights: the exact area means of GRID equal parts of [lo, hi) in cells."""
    edges = np.linspace(lo, hi, GRID + 1)
    cells = np.arange(SIDE)
    m = np.clip(np.minimum(edges[1:, None], cells[None, :] + 1.0) - np.maximum(edges[:-1, None], cells[None, :]), 0.0, None)
    return m / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)


def slot_grid(layout: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n, GRID * GRID) uint8 1-15: the tone-normalised grid of each box's inner part (0 where
    the box is empty)."""
    lay = np.asarray(layout, np.float32)
    out = np.zeros((len(lay), GRID * GRID), np.uint8)
    for i in np.flatnonzero(boxes[:, 2] > 0).tolist():
        top, left, h, w = (float(v) for v in boxes[i])
        rows = _area_rows(top + INSET * h, top + h - INSET * h)
        cols = _area_rows(left + INSET * w, left + w - INSET * w)
        g = rows @ lay[i] @ cols.T
        z = (g - g.mean()) / (g.std() + 4.0)
        out[i] = np.clip(np.round(z * 3 + 8), 1, 15).astype(np.uint8).ravel()
    return out


def slot_codes(layout: np.ndarray) -> np.ndarray:
    """(n,) uint64: each framed image's slot grid packed 4 bits a cell (never 0: cells are
    1-15), 0 where the image is not framed."""
    grid = slot_grid(layout, content_boxes(layout)).astype(np.uint64)
    shifts = (np.arange(GRID * GRID, dtype=np.uint64) * np.uint64(4))
    return np.bitwise_or.reduce(grid << shifts, axis=1) if len(grid) else np.zeros(0, np.uint64)


def slot_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of the cells of packed slot codes (element-wise)."""
    a, b = np.asarray(a, np.uint64), np.asarray(b, np.uint64)
    shifts = (np.arange(GRID * GRID, dtype=np.uint64) * np.uint64(4))
    cells_a = ((a[..., None] >> shifts) & np.uint64(15)).astype(np.int16)
    cells_b = ((b[..., None] >> shifts) & np.uint64(15)).astype(np.int16)
    return np.abs(cells_a - cells_b).mean(axis=-1)
