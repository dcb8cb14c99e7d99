"""The layout test of a picture shown whole, and smaller, inside another: a cheap check that
ranks the ``contains`` stage's candidates before the local check (pipeline/thorough.py).

The contained picture's 32x32 layout, shrunk to every share of the container's width in
``INSET_SHARES`` (its height following from the two images' aspect ratios, as pasting keeps a
picture's shape), is correlated with the container's layout at every offset.  A picture pasted
whole into another correlates at 0.88 and above; unrelated pairs reach 0.81 in one of a hundred
(``eval/contains.py`` prints both distributions, on photos outside the dev set).
"""

from __future__ import annotations

import numpy as np

from .rules import best_inside_batch

__all__ = ["INSET_SHARES", "inset_placement"]

#: the contained picture's width as a share of its container's: an inset, a photo on a slide
#: or in a screenshot of a post, down to about a third of the frame
INSET_SHARES = tuple(np.round(np.arange(0.35, 0.90, 0.05), 2).tolist())
#: aspect ratios are binned (log steps of 0.1) so pairs of one bin share their template sizes
_ASPECT_BIN = 0.1
#: pairs correlated at a time (each holds its correlation planes)
_BATCH = 64


def inset_placement(container: np.ndarray, contained: np.ndarray, aspect_container: np.ndarray,
                    aspect_contained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P,) best correlation of each ``contained`` layout (P, 32, 32) shrunk whole into its
    ``container`` layout at any share of INSET_SHARES and any offset (-1 where no share fits),
    and where each fits best: (P, 4) left, top, right, bottom as shares of the container's frame
    (zeros where no share fits).  Aspects are width / height."""
    big = np.asarray(container, np.float32)
    small = np.asarray(contained, np.float32)
    out = np.full(len(big), -1.0)
    where = np.zeros((len(big), 4), np.int64)
    if not len(big):
        return out, np.zeros((0, 4))
    side = big.shape[1]
    ratio = np.asarray(aspect_container, np.float64) / np.maximum(np.asarray(aspect_contained, np.float64), 1e-6)
    key = np.round(np.log(np.maximum(ratio, 1e-6)) / _ASPECT_BIN).astype(np.int64)
    for k in np.unique(key).tolist():
        rows = np.flatnonzero(key == k)
        r = float(np.exp(k * _ASPECT_BIN))  # the contained's height share per unit of width share
        sizes = sorted({(round(side * f * r), round(side * f)) for f in INSET_SHARES
                        if 4 <= round(side * f * r) < side and 4 <= round(side * f) < side})
        if not sizes:
            continue
        for s in range(0, len(rows), _BATCH):
            at = rows[s : s + _BATCH]
            got = np.zeros((len(at), 4), np.int64)
            out[at] = best_inside_batch(big[at], small[at], sizes, got)
            where[at] = got
    th, tw, y, x = (where[:, i].astype(np.float64) for i in range(4))
    return out, np.stack([x, y, x + tw, y + th], axis=1) / side
