"""The group's own testimony about its original: every copy is derived from it, so it is the
member the others agree on.

Each copy carries its own edit; two copies differ by both of theirs.  So with distances that
add up edit by edit, a member's summed distance to the others exceeds the original's by
``(k - 2)`` times its own edit: the original is the medoid, and a re-encode, resize or lossless
copy of it (an edit of about nothing) ties with it.  The tie is then the quality contest's to
settle (group/keeper.py: pixels, detail, encoding and lineage); an edited copy — toned,
recoloured, stickered, captioned, cropped — is out of it, whatever JPEG quality it was saved
at.  Groups of two say nothing this way.

Distance: the mean absolute difference of the two 32x32 luminance layouts (b turned to a's
orientation) plus that of their 4x4 colour grids, in grey levels.  Raw levels on purpose:
a tone or gamma edit is an edit here, though no reason to doubt a duplicate elsewhere.
"""

from __future__ import annotations

import numpy as np

from ..features.orient import orient_layouts
from ..verify.rules import d256_distance, orient_colour

__all__ = ["agreed_members", "FAITHFUL", "MAX_CONSENSUS"]

#: what a faithful copy (a re-encode at q50 and above, a resize, a lossless re-save) moves the
#: distance by, in grey levels: JPEG and resampling noise on 32x32 cell means stays within ~2
#: (docs/benchmarks.md "Keeper"); a tone, colour or overlay edit moves it by 5 and more
FAITHFUL = 3.0
#: the consensus is read for groups up to this size (k^2 distances); larger ones go by quality
MAX_CONSENSUS = 64


def distances(layout: np.ndarray, colour: np.ndarray, d256: np.ndarray) -> np.ndarray:
    """(k, k) edit distances of k members: layouts (k, s, s), colour grids (k, 48), hashes (k, 8, 4)."""
    k = len(layout)
    i, j = np.triu_indices(k, 1)
    _, variant = d256_distance(d256[i], d256[j])
    # on 16x16 means of the layouts: a turn or a flip moves the 32x32 cells' borders against the
    # pixels (resampling noise of 4-5 levels at strong edges), which halving the grid averages out
    diff = layout[i].astype(np.float32) - orient_layouts(layout[j].astype(np.float32), variant)
    s = diff.shape[-1] // 2
    lay = np.abs(diff.reshape(len(diff), s, 2, s, 2).mean(axis=(2, 4))).mean(axis=(1, 2))
    col = np.abs(colour[i].astype(np.float32) - orient_colour(colour[j], variant).astype(np.float32)).mean(axis=1)
    out = np.zeros((k, k), np.float32)
    out[i, j] = out[j, i] = lay + col
    return out


def agreed_members(layout: np.ndarray, colour: np.ndarray, d256: np.ndarray) -> np.ndarray:
    """Mask of the members that tie for the medoid (all of them for groups of two, or larger
    than :data:`MAX_CONSENSUS`)."""
    k = len(layout)
    if k < 3 or k > MAX_CONSENSUS:
        return np.ones(k, dtype=bool)
    cost = distances(layout, colour, d256).sum(axis=1)
    return (cost - cost.min()) <= (k - 2) * FAITHFUL
