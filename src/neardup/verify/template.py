"""The shared-frame guard: two images that agree everywhere except in the region that carries
their content are different pictures in one template, not copies.

A whole-image hash cannot tell a screenshot of one app with another photo in it from a copy:
the frame covers most of the image and so most of the hash.  Nor can it tell two different
objects on the same plain background apart (a "hub").  Both fail the same test: compare the
two layouts (32x32 luminance, ``features.extract.SIG_SIDE``) block by block and look at the
blocks where they disagree.

* b's layout is first put in a's orientation and its grey levels mapped onto a's by rank
  (histogram matching), so tone, gamma and contrast edits, which keep the order of grey levels,
  leave no disagreement.
* Each 4x4-cell block is compared under shifts of up to :data:`SHIFT` cells, so a small crop
  or a resize that moved content by a cell or two does not count either.
* A block disagrees when its mean absolute difference, at its best shift, is above
  :data:`BLOCK_DIFF` grey levels.

A pair is refused when the disagreeing blocks cover :data:`MAX_REGION` of the image or more
(an overlay a copy carries — a caption, an emoji, a watermark — covers less; a picture slot
covers more), or when they are half or more of the blocks that hold any content at all (two
different patches on one plain background: there is nothing else to agree on).  How the two
numbers were chosen, and on what: docs/benchmarks.md "Shared frames".
"""

from __future__ import annotations

import numpy as np

from ..features.orient import orient_layouts

__all__ = ["frame_disagreement", "shared_frame", "aligned_frame", "overlap_framed", "BLOCK_DIFF", "MAX_REGION", "CONTENT_SHARE", "SHIFT"]

#: block side, in layout cells (32 / 4 = 8 blocks a side, 64 blocks)
BLOCK = 4
#: cells a block may move to find its match.  Two: a 90% crop moves edges by 1.6, but every
#: block of a different picture in a slot also finds a better match somewhere within two cells
#: of smooth texture (eval/templates.py --templates 40 --per 25 --seed 10: 51 false pairs; one
#: app's frame with 100 pictures, --templates 2 --per 100 --seed 9: 35).  One: 34 and 16, the
#: dev set loses one of 813 tier-A copies, the own crops' guard refuses 6 of 294 instead of 5
#: (crop pairs are compared as the crop test placed them, to a cell)
SHIFT = 1
#: mean absolute grey-level difference, at the best shift, from which a block disagrees
BLOCK_DIFF = 20.0
#: disagreeing share of the image from which a pair is two pictures in one frame: two blocks
#: of the 64 (a caption or an emoji a copy carries covers at most one at this threshold)
MAX_REGION = 2 / 64
#: ... or share of the blocks with content (two patches on a plain background)
CONTENT_SHARE = 0.5
#: a block "holds content" when its grey levels spread by more than this (std, levels)
FLAT_STD = 3.0
#: pairs whose layouts hold content in at most this share of blocks are compared by their own
#: levels as well as by rank (a patch on a plain background: ``tests/populations.hub``)
SPARSE = 0.25


def _rank_matched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b's values replaced by a's, rank for rank: the order-preserving map from b onto a."""
    p, n = a.shape[0], a.shape[1] * a.shape[2]
    flat_b = b.reshape(p, n)
    order = np.argsort(flat_b, axis=1, kind="stable")
    out = np.empty_like(flat_b)
    np.put_along_axis(out, order, np.sort(a.reshape(p, n), axis=1), axis=1)
    return out.reshape(b.shape)


def _blocks(x: np.ndarray) -> np.ndarray:
    p, s = x.shape[0], x.shape[1]
    k = s // BLOCK
    return x.reshape(p, k, BLOCK, k, BLOCK).transpose(0, 1, 3, 2, 4).reshape(p, k, k, BLOCK * BLOCK)


#: centre crops tried, per side, when the layouts disagree as they are: a border added and not
#: trimmed, or trimmed differently, rescales the content by up to a fifth
RESCALES = (0.96, 0.92, 0.88, 0.84, 0.80)


def _centre_crop_matrix(n: int, share: float) -> np.ndarray:
    """(n, n) linear interpolation of the centre ``share`` of n samples back onto n."""
    pos = (np.arange(n) + 0.5) * share + n * (1.0 - share) / 2.0 - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    frac = (pos - np.floor(pos)).astype(np.float32)
    m = np.zeros((n, n), np.float32)
    m[np.arange(n), lo] += 1.0 - frac
    m[np.arange(n), hi] += frac
    return m


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(region, share) of aligned layouts a and b (b already oriented).  The grey levels of the
    flatter one are mapped onto the other's: mapped onto a flat layout, a patch would look flat
    too."""
    flip = a.reshape(len(a), -1).std(axis=1) < b.reshape(len(b), -1).std(axis=1)
    hi = np.where(flip[:, None, None], b, a)
    lo = np.where(flip[:, None, None], a, b)
    region, share = _compare_one(hi, _rank_matched(hi, lo))
    # on a plain background the few content cells are all there is, and matching ranks maps any
    # patch's darkest cells onto the other's: where little of either holds content, the levels
    # are compared as they are too (a copy of such an image keeps its levels; eval/templates.py)
    sparse = np.flatnonzero(((_blocks(a).std(axis=-1) > FLAT_STD) | (_blocks(b).std(axis=-1) > FLAT_STD))
                            .mean(axis=(1, 2)) <= SPARSE)
    if len(sparse):
        raw_region, raw_share = _compare_one(a[sparse], b[sparse])
        region[sparse] = np.maximum(region[sparse], raw_region)
        share[sparse] = np.maximum(share[sparse], raw_share)
    return region, share


def _compare_one(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a.shape[1]
    padded = np.pad(b, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)), mode="edge")
    best = np.full((len(a), s // BLOCK, s // BLOCK), np.inf, np.float32)
    for dy in range(2 * SHIFT + 1):
        for dx in range(2 * SHIFT + 1):
            moved = padded[:, dy : dy + s, dx : dx + s]
            best = np.minimum(best, _blocks(np.abs(a - moved)).mean(axis=-1))
    disagree = best > BLOCK_DIFF
    content = (_blocks(a).std(axis=-1) > FLAT_STD) | (_blocks(b).std(axis=-1) > FLAT_STD) | disagree
    region = disagree.mean(axis=(1, 2))
    share = disagree.sum(axis=(1, 2)) / np.maximum(content.sum(axis=(1, 2)), 1)
    return region, share


def frame_disagreement(sig_a: np.ndarray, sig_b: np.ndarray, variant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: the share of blocks that disagree at the best of the alignments tried (as they
    are, then centre crops of either side), and, where the disagreeing blocks are half or more
    of those with content as the layouts are, that share (else 0).

    ``sig_a``, ``sig_b``: (P, s, s) uint8 layouts; ``variant``: (P,) orientation of b matching a.
    """
    a = np.asarray(sig_a, dtype=np.float32)
    if not len(a):
        return np.zeros(0), np.zeros(0)
    b = orient_layouts(np.asarray(sig_b, dtype=np.float32), variant)
    region, share = _compare(a, b)
    # the share of the content is read as the layouts are: a centre crop may cut a patch away
    # with the margin, and a patch on a plain background is all there is to agree on
    plain = (share >= CONTENT_SHARE) & (region > 0)
    s = a.shape[1]
    for f in RESCALES:
        todo = np.flatnonzero((region >= MAX_REGION) & ~plain)
        if not len(todo):
            break
        m = _centre_crop_matrix(s, f)
        for x, y in ((a[todo], m @ b[todo] @ m.T), (m @ a[todo] @ m.T, b[todo])):
            r, _ = _compare(x, y)
            better = r < region[todo]
            region[todo[better]] = r[better]
    return region, np.where(plain, np.maximum(share, CONTENT_SHARE), 0.0)


def _refused(region: np.ndarray, share: np.ndarray) -> np.ndarray:
    return (region >= MAX_REGION) | (share >= CONTENT_SHARE)


def aligned_frame(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """:func:`shared_frame` for layouts already in one frame (as the crop test placed them)."""
    a = np.asarray(sig_a, dtype=np.float32)
    if not len(a):
        return np.zeros(0, dtype=bool)
    return _refused(*_compare(a, np.asarray(sig_b, dtype=np.float32)))


def overlap_framed(a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, grid: int = 8) -> bool:
    """The guard on two aligned views (local verification's thumbnails, ``mask`` where both
    have pixels): the overlap's bounding box cut into ``grid`` x ``grid`` blocks, b's grey levels
    rank-matched to a's inside the mask, and the same refusal rule as for layouts."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return False
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return _overlap_framed(a, b, mask, (y0, y1, x0, x1), grid) or _overlap_framed(b, a, mask, (y0, y1, x0, x1), grid)


def _overlap_framed(a: np.ndarray, b: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], grid: int) -> bool:
    y0, y1, x0, x1 = box
    ys, xs = np.nonzero(mask)
    va = a[ys, xs].astype(np.float64)
    matched = _rank_matched(va[None, :, None], b[ys, xs].astype(np.float64)[None, :, None]).ravel()
    # each masked pixel's block, on a grid x grid cut of the overlap's bounding box
    block = ((ys - y0) * grid // max(y1 - y0, 1)) * grid + (xs - x0) * grid // max(x1 - x0, 1)
    n_blocks = grid * grid

    def per_block(w: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(block, weights=w, minlength=n_blocks)

    count = per_block()
    full = count.astype(np.int64)
    sizes = np.bincount(((np.arange(y0, y1)[:, None] - y0) * grid // max(y1 - y0, 1) * grid
                         + (np.arange(x0, x1)[None, :] - x0) * grid // max(x1 - x0, 1)).ravel(), minlength=n_blocks)
    covered = (full >= 0.5 * sizes) & (full >= 16)
    if not covered.any():
        return False
    safe = np.maximum(count, 1)
    diff = per_block(np.abs(va - matched)) / safe
    std_a = np.sqrt(np.maximum(per_block(va * va) / safe - (per_block(va) / safe) ** 2, 0))
    std_b = np.sqrt(np.maximum(per_block(matched * matched) / safe - (per_block(matched) / safe) ** 2, 0))
    off = covered & (diff > BLOCK_DIFF)
    content = covered & (off | (std_a > FLAT_STD) | (std_b > FLAT_STD))
    n_off = int(off.sum())
    return bool(n_off / int(covered.sum()) >= MAX_REGION or (n_off and n_off / max(int(content.sum()), 1) >= CONTENT_SHARE))


def shared_frame(sig_a: np.ndarray, sig_b: np.ndarray, variant: np.ndarray) -> np.ndarray:
    """Mask of pairs that are different pictures sharing a frame or a plain background."""
    return _refused(*frame_disagreement(sig_a, sig_b, variant))
