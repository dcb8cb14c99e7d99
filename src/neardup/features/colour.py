"""A compact colour signature: a 4x4 grid of mean opponent colours.

Sixteen cells of (luma, red-green, blue-yellow), 48 bytes, enough to tell a red car from a
blue one in the same layout while a re-encode, resize or mild tone change stays close.
"""

from __future__ import annotations

import numpy as np

from .hashes import block_means

__all__ = ["colour_signature", "colour_signatures", "colour_distance", "colourfulness", "colourfulness_batch"]

GRID = 4


def colour_signatures(rgb: np.ndarray) -> np.ndarray:
    """(N, 48) uint8 for a stack (N, h, w, 3): per cell of a 4x4 grid (exact areas), mean luma,
    R-G and B-Y, offset into 0..255."""
    m = block_means(rgb, GRID).astype(np.float64)  # (N, 4, 4, 3)
    r, g, b = m[..., 0], m[..., 1], m[..., 2]
    out = np.stack([0.299 * r + 0.587 * g + 0.114 * b, (r - g) / 2 + 128, (r + g) / 4 - b / 2 + 128], axis=-1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(len(rgb), -1)


def colour_signature(rgb: np.ndarray) -> np.ndarray:
    """(48,) uint8 colour signature of one image (see :func:`colour_signatures`)."""
    return colour_signatures(rgb[None])[0]


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute chroma difference between signatures (..., 48), in 0..255 units.

    Luma is left out: tone and gamma edits change it without making a different picture.
    """
    x = a.reshape(*a.shape[:-1], GRID * GRID, 3).astype(np.float32)
    y = b.reshape(*b.shape[:-1], GRID * GRID, 3).astype(np.float32)
    return np.abs(x[..., 1:] - y[..., 1:]).mean(axis=(-1, -2))


def colourfulness_batch(rgb: np.ndarray) -> np.ndarray:
    """Hasler and Suesstrunk's colourfulness of each image of a stack (N, h, w, 3); 0 for grey."""
    a = rgb.reshape(len(rgb), -1, 3).astype(np.float32)
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    return np.hypot(rg.std(axis=1), yb.std(axis=1)) + 0.3 * np.hypot(rg.mean(axis=1), yb.mean(axis=1))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness metric of one image; 0 for a grey image."""
    return float(colourfulness_batch(rgb[None])[0])
