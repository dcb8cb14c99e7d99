"""Regional embeddings: what a picture shown *inside* another one (an inset, a screenshot of a
post, a photo on a slide) looks like to the CNN, so thorough mode can find the container of a
picture as well as its copies.

A global embedding of a container describes the whole frame: the picture it shows is a part of
it, often under half of it, and its cosine with that picture is low.  Two descriptors fix that,
both from the model's last feature map:

* each image's **regions**: GeM pools of square windows of the map (``REGION_SHARES`` of its
  side, at every cell), the R-MAC idea without the aggregation: one vector per region;
* each image's **contained view**: the global embedding of the image shown at
  ``CONTAINED_SIDE`` pixels, the size a region of the container shows it at.  CNN features are
  not scale invariant: a picture inset at half the frame, seen by a 224-pixel pass, is about
  128 pixels wide, and matches its own 128-pixel view far better than its 224-pixel one
  (``eval/contains.py`` measures both).

A region of X close to the contained view of Y makes (X, Y) a candidate for the ``contains``
stage, verified by local features like any other (``pipeline/thorough.py``).  Regions are
stored as 8 bits a component (direction is all a cosine needs).
"""

from __future__ import annotations

import numpy as np

__all__ = ["REGION_SHARES", "CONTAINED_SIDE", "region_windows", "pool_regions", "gem", "quantise_regions",
           "dequantise_regions", "REGIONS_VERSION"]

#: region sides as a share of the feature map's side: 4 and 5 cells of Lite0's 7x7 map at 224
#: pixels (a picture inset at 40-75% of its container's side covers about that much)
REGION_SHARES = (4 / 7, 5 / 7)
#: the side, in pixels, of the contained view: a region of REGION_SHARES at the model's 224
#: pixels shows its picture at 128-160 pixels; the smaller end keeps the pass cheap (a third of
#: the 224-pixel one) and matches insets down to 40% of the frame
CONTAINED_SIDE = 128
#: GeM's power, as the exported model pools its global embedding (embed/export.py)
GEM_P = 3.0
#: part of the cache key of the regional vectors and contained views
REGIONS_VERSION = "regions-1"


def region_windows(side_h: int, side_w: int) -> list[tuple[int, int, int]]:
    """(y, x, k): every k x k window of an ``side_h`` x ``side_w`` map, k from REGION_SHARES."""
    out = []
    for share in REGION_SHARES:
        k = max(1, round(share * min(side_h, side_w)))
        out += [(y, x, k) for y in range(side_h - k + 1) for x in range(side_w - k + 1)]
    return out


def gem(fmap: np.ndarray) -> np.ndarray:
    """(n, c) GeM pool of (n, c, h, w) non-negative maps."""
    return np.cbrt(np.mean(np.asarray(fmap, np.float32) ** GEM_P, axis=(2, 3)))


def pool_regions(fmap: np.ndarray) -> np.ndarray:
    """(n, R, c) float32, L2-normalised GeM pools of :func:`region_windows` of (n, c, h, w) maps.

    Window sums come from an integral image of the cubed map, so every region costs the same
    four lookups whatever its size."""
    # channels last: the sums run over whole channel vectors, not 1,280 rows of seven
    f = np.ascontiguousarray(np.asarray(fmap, np.float32).transpose(0, 2, 3, 1))
    n, h, w, c = f.shape
    cubed = np.zeros((n, h + 1, w + 1, c), np.float32)
    powered = f * f * f if GEM_P == 3 else f**GEM_P
    cubed[:, 1:, 1:] = powered.cumsum(axis=1).cumsum(axis=2)
    wins = region_windows(h, w)
    out = np.empty((n, len(wins), c), np.float32)
    for i, (y, x, k) in enumerate(wins):
        s = cubed[:, y + k, x + k] - cubed[:, y, x + k] - cubed[:, y + k, x] + cubed[:, y, x]
        out[:, i] = np.cbrt(np.maximum(s, 0.0) / (k * k))
    out /= np.linalg.norm(out, axis=2, keepdims=True) + 1e-12
    return out


def quantise_regions(regions: np.ndarray) -> np.ndarray:
    """(n, R, c) uint8: each vector scaled to its largest component (GeM pools are non-negative),
    so 8 bits keep its direction to about 0.2% of a unit of cosine."""
    r = np.maximum(np.asarray(regions, np.float32), 0.0)
    top = r.max(axis=2, keepdims=True)
    return np.round(r / np.maximum(top, 1e-12) * 255.0).astype(np.uint8)


def dequantise_regions(q: np.ndarray) -> np.ndarray:
    """float32 unit vectors of :func:`quantise_regions`' codes, same shape."""
    r = np.asarray(q, np.float32)
    return r / (np.linalg.norm(r, axis=-1, keepdims=True) + 1e-12)
