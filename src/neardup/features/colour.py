"""A compact colour signature: a 4x4 grid of mean opponent colours.

Sixteen cells of (luma, red-green, blue-yellow), 48 bytes, enough to tell a red car from a
blue one in the same layout while a re-encode, resize or mild tone change stays close.
"""

from __future__ import annotations

import numpy as np

__all__ = ["colour_signature", "colour_distance", "colourfulness"]

GRID = 4


def colour_signature(rgb: np.ndarray) -> np.ndarray:
    """(48,) uint8: per cell of a 4x4 grid, mean luma, R-G and B-Y, offset into 0..255."""
    h, w = rgb.shape[:2]
    ys = np.linspace(0, h, GRID + 1).astype(int)
    xs = np.linspace(0, w, GRID + 1).astype(int)
    # exact integer cell sums in two reductions, not sixteen slices (a repeated boundary, in
    # an image under 4 pixels, sums the single line at it, as the slice did)
    tot = np.add.reduceat(np.add.reduceat(rgb, ys[:-1], axis=0, dtype=np.int64), xs[:-1], axis=1)
    rows = np.where(ys[1:] > ys[:-1], ys[1:] - ys[:-1], 1)
    cols = np.where(xs[1:] > xs[:-1], xs[1:] - xs[:-1], 1)
    area = (rows[:, None] * cols[None, :])[..., None]
    r, g, b = np.moveaxis(tot / area, -1, 0)
    out = np.stack([0.299 * r + 0.587 * g + 0.114 * b, (r - g) / 2 + 128, (r + g) / 4 - b / 2 + 128], axis=-1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(-1)


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute chroma difference between signatures (..., 48), in 0..255 units.

    Luma is left out: tone and gamma edits change it without making a different picture.
    """
    x = a.reshape(*a.shape[:-1], GRID * GRID, 3).astype(np.float32)
    y = b.reshape(*b.shape[:-1], GRID * GRID, 3).astype(np.float32)
    return np.abs(x[..., 1:] - y[..., 1:]).mean(axis=(-1, -2))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness metric; 0 for a grey image."""
    a = rgb.astype(np.float32)
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
