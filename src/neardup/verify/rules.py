"""Verification of candidate pairs, in batches, with the evidence kept for every decision.

Two tests, each with a stated precision target rather than a fitted number:

* ``hash``: the 256-bit DCT hash (best of the 8 orientations) within ``hash_threshold`` bits.
  On real photos unrelated images sit above ~30% of the bits; 40/256 (15.6%) leaves a wide
  margin (docs/benchmarks.md has the distributions).
* ``crop``: for pairs the 64-bit search found but whose 256-bit hash differs (crops, small
  tilts), the 32x32 luminance layouts must align under a crop of 75-100% per axis with a
  normalised cross-correlation of at least ``crop_ncc``.

Low-information images (near-blank, or too little content left after trimming borders) have
hashes made largely of noise: they are held to ``strict_hash_threshold`` *and* must match in
colour (``low_info_colour_max``, chroma units), and they never take the crop path.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from ..config import CROP_NCC, HASH_THRESHOLD
from ..features.colour import GRID, colour_distance
from ..features.orient import INVERSE, compose, orient_layouts
from ..features.windows import SIDE, TILT_ANGLES, WINDOWS, frame_codes, tilted_layouts, turned_window_codes
from ..records import Stage, Verified
from ..spill import return_freed_memory, take_rows
from .template import aligned_frame, shared_frame

__all__ = ["VerifyParams", "Verified", "SeenPairs", "CropQueue", "verify_batch", "crop_ncc", "crop_ncc_batch", "orient_colour",
           "best_inside_batch", "best_inside_coarse",
           "crop_aligned", "framed_crop", "crop_explains", "crop_variant", "crop_hypothesis", "crop_match", "CropMatch", "tilt_views", "TiltHypothesis", "tilt_accepted",
           "d256_distance"]


@dataclass(frozen=True, slots=True)
class VerifyParams:
    hash_threshold: int = HASH_THRESHOLD
    strict_hash_threshold: int = 20
    strong_threshold: int = 24  # a "strong" edge may link a member to the group via a neighbour
    crop_ncc: float = CROP_NCC
    colour_max: float = 40.0  # chroma units; only rejects when both images are colourful
    low_info_colour_max: float = 10.0  # a low-information pair must also match in colour
    frame_guard: bool = True  # refuse hash matches that differ where the pictures are (verify/template.py)


STAGE_NAMES = {int(s): s.label for s in Stage}


class CropCache(Protocol):
    """Crop-test correlations kept between runs, by row pair (nan where unknown)."""

    def get(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...

    def put(self, a: np.ndarray, b: np.ndarray, ncc: np.ndarray) -> None: ...


def _merge_sorted(keys: np.ndarray, dists: np.ndarray, more: np.ndarray, more_dists: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of distinct keys (none in both) as one, with their distances: each key
    of the shorter run goes where a binary search puts it (no sort of the whole, whose
    permutation alone was 8 bytes a pair at the largest merge of a million-image search)."""
    if len(more) > len(keys):
        keys, dists, more, more_dists = more, more_dists, keys, dists
    at = np.searchsorted(keys, more) + np.arange(len(more))
    rest = np.ones(len(keys) + len(more), bool)
    rest[at] = False
    out, out_d = np.empty(len(rest), keys.dtype), np.empty(len(rest), dists.dtype)
    out[at], out_d[at] = more, more_dists
    out[rest], out_d[rest] = keys, dists
    return out, out_d


class SeenPairs:
    """A set of pair keys: 8 bytes a pair, as sorted int64 runs merged like a binary counter
    (runs of decreasing size, O(log n) of them), so adding k keys to n costs O(k log n)
    amortised, not the O(n) of merging into one sorted array each time.  With distances, each
    key also keeps the least distance it was seen at (2 bytes more a pair)."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []
        self.dists: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def fresh(self, keys: np.ndarray, dist: np.ndarray | None = None) -> np.ndarray:
        """Mask of ``keys`` not seen before (duplicates within ``keys`` count once); adds them,
        and keeps the least of ``dist`` for each (when given)."""
        keys = np.asarray(keys, dtype=np.int64)
        d = np.zeros(len(keys), np.int16) if dist is None else np.asarray(dist, np.int16)
        order = np.lexsort((d, keys))  # per key, its least distance first
        uniq, first = np.unique(keys[order], return_index=True)
        first = order[first]
        least = d[first]
        seen = np.zeros(len(uniq), dtype=bool)
        for run, run_d in zip(self.runs, self.dists):
            pos = np.minimum(np.searchsorted(run, uniq), len(run) - 1)
            hit = run[pos] == uniq
            np.minimum.at(run_d, pos[hit], least[hit])
            seen |= hit
        mask = np.zeros(len(keys), dtype=bool)
        mask[first[~seen]] = True
        new, new_d = uniq[~seen], least[~seen]
        if len(new):
            while self.runs and len(self.runs[-1]) <= len(new):
                new, new_d = _merge_sorted(self.runs.pop(), self.dists.pop(), new, new_d)
            self.runs.append(new)
            self.dists.append(new_d)
        return mask

    def least(self, keys: np.ndarray) -> np.ndarray:
        """The least distance each of ``keys`` (all seen) was seen at."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.full(len(keys), np.iinfo(np.int16).max, np.int16)
        for run, run_d in zip(self.runs, self.dists):
            pos = np.minimum(np.searchsorted(run, keys), len(run) - 1)
            hit = run[pos] == keys
            out[hit] = np.minimum(out[hit], run_d[pos[hit]])
        return out


def _cell_perm() -> np.ndarray:
    grid = np.arange(GRID * GRID).reshape(GRID, GRID)
    perms = []
    for flip in (False, True):
        base = grid[:, ::-1] if flip else grid
        for r in range(4):
            perms.append(np.rot90(base, r).reshape(-1))
    return np.stack(perms)


_PERM = _cell_perm()


def orient_colour(colour: np.ndarray, variant: np.ndarray) -> np.ndarray:
    """Colour signatures (n, 48) rearranged to dihedral ``variant`` (n,)."""
    cells = colour.reshape(len(colour), GRID * GRID, 3)
    idx = _PERM[variant]  # (n, 16)
    return np.take_along_axis(cells, idx[:, :, None], axis=1).reshape(len(colour), -1)


def d256_distance(d256_a: np.ndarray, d256_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best distance between the two hashes over the 8 orientations, and b's variant.

    Resampling makes the variants only nearly exact, so both directions are taken
    (a upright against b's variants, and b upright against a's): the distance is symmetric.
    """
    d = np.bitwise_count(np.bitwise_xor(d256_a[:, None, 0, :], d256_b)).sum(axis=-1).astype(np.int16)
    back = np.bitwise_count(np.bitwise_xor(d256_b[:, None, 0, :], d256_a)).sum(axis=-1).astype(np.int16)
    v = d.argmin(axis=1)
    rows = np.arange(len(d))
    return np.minimum(d[rows, v], back.min(axis=1)), v


_EIGHT = np.arange(8)


def crop_variant(sig_a: np.ndarray, sig_b: np.ndarray, p64_a: np.ndarray, p64_b: np.ndarray) -> np.ndarray:
    """The orientation of b that matches a, for pairs the crop test is given: from whichever
    codes agree best, the full frames (a upright against b's variants), a's crop windows (each
    in its own orientation) against b's variants, or b's windows against a's.  A crop scrambles
    the full frame's code, so its orientation alone is often wrong; the window that found the
    pair is not."""
    p64_a, p64_b = np.asarray(p64_a, np.uint64), np.asarray(p64_b, np.uint64)
    if not len(p64_a):
        return np.zeros(0, np.int64)
    # a few kB of distances a pair: PAIR_CHUNK pairs at a time bound them, whatever the queue holds
    return np.concatenate([_crop_variant(sig_a[s : s + PAIR_CHUNK], sig_b[s : s + PAIR_CHUNK],
                                         p64_a[s : s + PAIR_CHUNK], p64_b[s : s + PAIR_CHUNK])
                           for s in range(0, len(p64_a), PAIR_CHUNK)])


#: pairs whose orientation or tilt is worked out at a time: the tilt test holds 24 tilted
#: layouts a pair (~100 kB), crop_variant ~10 kB of code distances a pair
PAIR_CHUNK = 256


def _crop_variant(sig_a: np.ndarray, sig_b: np.ndarray, p64_a: np.ndarray, p64_b: np.ndarray) -> np.ndarray:
    return _hypothesis(sig_a, sig_b, p64_a, p64_b)[0]


def _hypothesis(sig_a: np.ndarray, sig_b: np.ndarray, p64_a: np.ndarray, p64_b: np.ndarray,
                turned_a: tuple[np.ndarray, np.ndarray] | None = None,
                turned_b: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    codes_a, turn_a = turned_a if turned_a is not None else turned_window_codes(sig_a)  # (P, W): a's window turned by u
    codes_b, turn_b = turned_b if turned_b is not None else turned_window_codes(sig_b)
    full = (np.bitwise_count(p64_a[:, :1] ^ p64_b), np.broadcast_to(_EIGHT, p64_b.shape))
    # a's window turned by u ~ b turned by c: b turned by c, then by u's inverse, is a
    in_a = (np.bitwise_count(codes_a[:, :, None] ^ p64_b[:, None, :]),
            compose(_EIGHT[None, None, :], INVERSE[turn_a][:, :, None]))
    # b's window turned by u ~ a turned by c: b turned by u, then by c's inverse, is a
    in_b = (np.bitwise_count(codes_b[:, :, None] ^ p64_a[:, None, :]),
            compose(turn_b[:, :, None], INVERSE[_EIGHT][None, None, :]))
    options = [full, in_a, in_b]
    dist = np.concatenate([d.reshape(len(d), -1) for d, _ in options], axis=1)
    variant = np.concatenate([v.reshape(len(v), -1) for _, v in options], axis=1)
    k = dist.argmin(axis=1)
    chosen = variant[np.arange(len(dist)), k]
    # what the best code says: b inside a at a's window, a inside b at b's window (its sides
    # swapped when b's turn into a's frame is a quarter turn), or near whole frames
    n_win = codes_a.shape[1]
    win = np.clip((k - 8) % (n_win * 8) // 8, 0, n_win - 1)
    sides = np.array([[w.h, w.w] for w in WINDOWS])[win]
    direction = np.where(k < 8, 0, np.where(k < 8 + n_win * 8, 1, -1))
    swap = (direction < 0) & (chosen % 2 == 1)
    sides = np.where(swap[:, None], sides[:, ::-1], sides)
    return chosen, np.column_stack([direction, sides]).astype(np.int64)


def crop_hypothesis(sig_a: np.ndarray, sig_b: np.ndarray, p64_a: np.ndarray, p64_b: np.ndarray, *,
                    turned_a: tuple[np.ndarray, np.ndarray] | None = None,
                    turned_b: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`crop_variant`, and what the codes that agree best say of the crop: (P, 3) int64
    rows of direction (+1: b inside a, -1: a inside b, 0: the full frames agree best) and the
    matching window's height and width in a's frame.

    ``turned_a``, ``turned_b``: each pair's :func:`~neardup.features.windows.turned_window_codes`
    of a and of b, where the caller has them: a look-alike is in many pairs, and is coded once."""
    p64_a, p64_b = np.asarray(p64_a, np.uint64), np.asarray(p64_b, np.uint64)
    if not len(p64_a):
        return np.zeros(0, np.int64), np.zeros((0, 3), np.int64)

    def part(turned: tuple[np.ndarray, np.ndarray] | None, s: int) -> tuple[np.ndarray, np.ndarray] | None:
        return None if turned is None else (turned[0][s : s + PAIR_CHUNK], turned[1][s : s + PAIR_CHUNK])

    parts = [_hypothesis(sig_a[s : s + PAIR_CHUNK], sig_b[s : s + PAIR_CHUNK], p64_a[s : s + PAIR_CHUNK],
                         p64_b[s : s + PAIR_CHUNK], part(turned_a, s), part(turned_b, s))
             for s in range(0, len(p64_a), PAIR_CHUNK)]
    return np.concatenate([v for v, _ in parts]), np.concatenate([h for _, h in parts])


#: crop sizes searched, per axis, as a share of the other layout's side
CROP_SCALES = (0.76, 0.82, 0.88, 0.94, 1.0)
#: sizes searched for the tilt test: the tilted view is already trimmed as the copy was, give or
#: take a trim the model does not know, so only crops of it down to 82% a side (eval/crops.py:
#: the own tilts accepted are the same 178 of 259 as with all of CROP_SCALES; 175 from 88%)
TILT_SCALES = (0.82, 0.88, 0.94, 1.0)
#: pairs the coarse grid scores at least this are searched again at every size within a cell
#: of their best (a crop between two coarse sizes loses up to ~0.05 of correlation to the
#: misfit: eval/crops.py measures the gain on crops of photos outside the dev set)
REFINE_FROM = 0.88
#: how far the frame guard takes the other view through a crop window's grid (crop_aligned)
SOFTEN = 0.5
#: pairs given the crop test at once (the correlation planes of a batch are ~200 kB a pair)
CROP_BATCH = 32
#: pairs given the hinted crop search at once (benchmarks/crop_memory.py: 4,096 at once held
#: ~0.5 GB above the queue's own arrays; a few hundred keep NumPy's calls large)
HINT_BATCH = 256


@lru_cache(maxsize=64)
def _bilinear(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of an antialiased bilinear resize (Pillow's BILINEAR filter)."""
    scale = n_in / n_out
    fs = max(1.0, scale)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        c = (i + 0.5) * scale
        lo, hi = max(int(c - fs + 0.5), 0), min(int(c + fs + 0.5), n_in)
        x = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((x - c + 0.5) / fs))
        m[i, lo:hi] = w / w.sum() if w.sum() > 0 else 0.0
    return m


def _sizes(side: int, scales: tuple[float, ...]) -> list[tuple[int, int]]:
    """Template sizes (th, tw) of every scale pair."""
    return [(int(round(side * fy)), int(round(side * fx))) for fy in scales for fx in scales]


def best_inside_batch(big: np.ndarray, small: np.ndarray, sizes: list[tuple[int, int]],
                       where: np.ndarray | None = None) -> np.ndarray:
    """For stacks (P, s, s): the best normalised cross-correlation of ``small`` resized to every
    template size (th, tw), at every offset inside ``big``.  One FFT per layout and template:
    for templates no larger than the layout, the circular correlation is exact at every valid
    offset.  With ``where``, the best placement of each pair is written there."""
    p, side, _ = big.shape
    b64 = big.astype(np.float64)
    sat = np.zeros((p, side + 1, side + 1))
    sat2 = np.zeros((p, side + 1, side + 1))
    sat[:, 1:, 1:] = b64.cumsum(1).cumsum(2)
    sat2[:, 1:, 1:] = (b64 * b64).cumsum(1).cumsum(2)
    fb = np.fft.rfft2(b64)
    best = np.full(p, -1.0)
    for th, tw in sizes:
        t = _bilinear(side, th) @ small.astype(np.float64) @ _bilinear(side, tw).T  # (P, th, tw)
        t = t - t.mean(axis=(1, 2), keepdims=True)
        tn = np.sqrt((t * t).sum(axis=(1, 2)))
        pad = np.zeros((p, side, side))
        pad[:, :th, :tw] = t
        num = np.fft.irfft2(fb * np.conj(np.fft.rfft2(pad)), s=(side, side))
        ny, nx = side - th + 1, side - tw + 1
        ws = sat[:, th:, tw:] - sat[:, :-th, tw:] - sat[:, th:, :-tw] + sat[:, :-th, :-tw]
        ws2 = sat2[:, th:, tw:] - sat2[:, :-th, tw:] - sat2[:, th:, :-tw] + sat2[:, :-th, :-tw]
        den = np.sqrt(np.maximum(ws2 - ws * ws / (th * tw), 0.0)) * tn[:, None, None] + 1e-6
        ncc = num[:, :ny, :nx] / den
        ncc[tn < 1e-3] = -1.0
        flat = ncc.reshape(p, -1)
        top = flat.argmax(axis=1)
        here = flat[np.arange(p), top]
        if where is not None:  # (P, 4): th, tw, y, x of the best placement so far
            better = here > best
            where[better] = np.stack([np.full(p, th), np.full(p, tw), top // nx, top % nx], axis=1)[better]
        best = np.maximum(best, here)
    return best


def best_inside_coarse(big: np.ndarray, small: np.ndarray, sizes: list[tuple[int, int]]) -> np.ndarray:
    """:func:`best_inside_batch` without placements, for the coarse pass's 16x16 layouts: each
    template is correlated at its few offsets (at most 5x5) directly instead of by an FFT per
    template, several times faster there (benchmarks/crop_coarse.py).  In float64 like the FFT:
    over a flat window the correlation is ~0 only if the template's mean is removed exactly."""
    p, side, _ = big.shape
    b64 = np.asarray(big, np.float64)
    small64 = np.asarray(small, np.float64)
    sat = np.zeros((p, side + 1, side + 1))
    sat2 = np.zeros((p, side + 1, side + 1))
    sat[:, 1:, 1:] = b64.cumsum(1).cumsum(2)
    sat2[:, 1:, 1:] = (b64 * b64).cumsum(1).cumsum(2)
    best = np.full(p, -1.0)
    for th, tw in sizes:
        t = _bilinear(side, th) @ small64 @ _bilinear(side, tw).T
        t -= t.mean(axis=(1, 2), keepdims=True)
        tn = np.sqrt((t * t).sum(axis=(1, 2)))
        ny, nx = side - th + 1, side - tw + 1
        num = np.empty((p, ny, nx))
        for y in range(ny):
            for x in range(nx):
                num[:, y, x] = np.einsum("pij,pij->p", b64[:, y : y + th, x : x + tw], t)
        ws = sat[:, th:, tw:] - sat[:, :-th, tw:] - sat[:, th:, :-tw] + sat[:, :-th, :-tw]
        ws2 = sat2[:, th:, tw:] - sat2[:, :-th, tw:] - sat2[:, th:, :-tw] + sat2[:, :-th, :-tw]
        den = np.sqrt(np.maximum(ws2 - ws * ws / (th * tw), 0.0)) * tn[:, None, None] + 1e-6
        ncc = num / den
        ncc[tn < 1e-3] = -1.0
        best = np.maximum(best, ncc.reshape(p, -1).max(axis=1))
    return best


@dataclass(frozen=True, slots=True)
class CropMatch:
    """The crop test's verdict on pairs, and where it placed each."""

    ncc: np.ndarray  # (P,) best correlation of one view as a crop of the other
    inside_a: np.ndarray  # (P,) bool: b's view found inside a's (else a's inside b's)
    where: np.ndarray  # (P, 4) int64: th, tw, y, x of the smaller view in the larger one's layout


def _match_batch(a: np.ndarray, b: np.ndarray, sizes: list[tuple[int, int]], refine: bool, whole: bool) -> CropMatch:
    p = len(a)
    where_ab, where_ba = np.zeros((p, 4), np.int64), np.zeros((p, 4), np.int64)
    b_in_a = best_inside_batch(a, b, sizes, where_ab)
    a_in_b = best_inside_batch(b, a, sizes, where_ba)
    inside_a = b_in_a >= a_in_b
    best = np.maximum(b_in_a, a_in_b)
    where = np.where(inside_a[:, None], where_ab, where_ba)
    if refine:
        _refine(a, b, best, inside_a, where, whole)
    return CropMatch(best, inside_a, where)


def _refine(a: np.ndarray, b: np.ndarray, best: np.ndarray, inside_a: np.ndarray, where: np.ndarray, whole: bool) -> None:
    """Every size within a cell of each pair's best, in the direction that won, for pairs at
    REFINE_FROM or more (``best`` and ``where`` updated in place)."""
    side = a.shape[1]
    near = np.flatnonzero(best >= REFINE_FROM)
    keys = {(bool(inside_a[i]), int(where[i, 0]), int(where[i, 1])) for i in near}
    for into_a, th, tw in keys:
        rows = near[(inside_a[near] == into_a) & (where[near, 0] == th) & (where[near, 1] == tw)]
        around = [(th + dy, tw + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                  if (dy or dx) and 0 < th + dy <= side and 0 < tw + dx <= side
                  and (whole or (th + dy, tw + dx) != (side, side))]
        got = np.zeros((len(rows), 4), np.int64)
        big, small = (a[rows], b[rows]) if into_a else (b[rows], a[rows])
        score = best_inside_batch(big, small, around, got)
        better = score > best[rows]
        best[rows[better]] = score[better]
        where[rows[better]] = got[better]


def _match_hinted(a: np.ndarray, b: np.ndarray, hint: np.ndarray) -> CropMatch:
    """The crop test where the codes say what to look for (:func:`crop_hypothesis`): only the
    grid sizes within a step of the window that matched, in its direction (near-whole sizes
    both ways when the full frames matched best), then the refinement.  A fifth of the search."""
    p, side = len(a), a.shape[1]
    grid = sorted({t[0] for t in _sizes(side, CROP_SCALES)})
    best = np.full(p, -1.0)
    inside_a = hint[:, 0] >= 0
    where = np.tile(np.array([side, side, 0, 0], np.int64), (p, 1))
    step = 2.5  # cells: one step of the grid either way, and the half step a window misses by
    near_whole = np.array([g >= side - 2 * step for g in grid])
    for into_a, direction in ((True, 1), (False, -1)):
        big, small = (a, b) if into_a else (b, a)
        for th in grid:
            for tw in grid:
                if (th, tw) == (side, side):
                    continue
                ok_h = np.abs(hint[:, 1] - th) <= step
                ok_w = np.abs(hint[:, 2] - tw) <= step
                rows = np.flatnonzero(((hint[:, 0] == direction) & ok_h & ok_w)
                                      | ((hint[:, 0] == 0) & near_whole[grid.index(th)] & near_whole[grid.index(tw)]))
                if not len(rows):
                    continue
                got = np.zeros((len(rows), 4), np.int64)
                score = best_inside_batch(big[rows], small[rows], [(th, tw)], got)
                better = score > best[rows]
                best[rows[better]] = score[better]
                where[rows[better]] = got[better]
                inside_a[rows[better]] = into_a
    _refine(a, b, best, inside_a, where, whole=False)
    return CropMatch(best, inside_a, where)


def crop_match(sig_a: np.ndarray, sig_b: np.ndarray, variant: np.ndarray, *,
               scales: tuple[float, ...] = CROP_SCALES, pool: Executor | None = None,
               hint: np.ndarray | None = None, bar: float = CROP_NCC) -> CropMatch:
    """The crop test on stacks of pairs: (P, s, s) layouts and (P,) variants of b.  Both
    directions are tried (a inside b, b inside a), every crop of 75-100% per axis on a 6%
    grid, every offset; then, where that comes close, every size within a cell of the best.
    The whole frame at full size on both axes is not a crop and is not tried: the crop test is
    given pairs the 256-bit hash refused, and two views that match as whole frames are what that
    hash compares (two pictures in one frame matched so, never a copy: docs/benchmarks.md).

    With a thread ``pool``, batches of pairs run in parallel (NumPy's FFTs and products release
    the GIL).  With a ``hint`` (:func:`crop_hypothesis`), the sizes the codes point to are
    searched first, and everything only for pairs that fall short of ``bar`` there."""
    a = np.asarray(sig_a, dtype=np.float32)
    b = orient_layouts(np.asarray(sig_b, dtype=np.float32), np.asarray(variant, dtype=np.int64))
    return _match_all(a, b, scales, pool, whole=False, hint=hint, bar=bar)


#: the crop test first runs on 16x16 means of the layouts (a quarter of the work); only pairs
#: scoring this there are searched at 32x32.  eval/crops.py's own crops that pass the test
#: score 0.87 or more at 16x16 (1% under 0.895), 0.2% of unrelated pairs reach 0.85
COARSE_BAR = 0.82


def _halved(x: np.ndarray) -> np.ndarray:
    """(P, s, s) layouts as (P, s/2, s/2) means of 2x2 cells."""
    p, s = x.shape[0], x.shape[1]
    return np.asarray(x, np.float32).reshape(p, s // 2, 2, s // 2, 2).mean(axis=(2, 4))


def _match_all(a: np.ndarray, b: np.ndarray, scales: tuple[float, ...], pool: Executor | None, *,
               whole: bool, hint: np.ndarray | None = None, bar: float = CROP_NCC) -> CropMatch:
    """:func:`crop_match` on layouts already in one orientation; with ``whole``, the full frame
    at full size is a placement too (a tilted view is trimmed to the copy's frame already).
    The full search runs only where the search on halved layouts comes near (COARSE_BAR); the
    others keep that coarse correlation (below the bar, as their full one would be)."""
    searched = scales in (CROP_SCALES, TILT_SCALES)  # the grids the bars were chosen on
    if not searched or not len(a) or a.shape[1] % 2:
        return _match_full(a, b, scales, pool, whole=whole)
    small_a, small_b = _halved(a), _halved(b)
    side = small_a.shape[1]
    sizes = [t for t in _sizes(side, scales) if whole or t != (side, side)]
    coarse = np.maximum(best_inside_coarse(small_a, small_b, sizes), best_inside_coarse(small_b, small_a, sizes))
    go = np.flatnonzero(coarse >= COARSE_BAR)
    # a pair the coarse pass refuses is placed whole (it is refused; the placement only has to be one)
    whole_frame = np.tile(np.array([a.shape[1], a.shape[2], 0, 0], np.int64), (len(a), 1))
    out = CropMatch(coarse.copy(), np.ones(len(a), bool), whole_frame)
    hinted = len(go) and hint is not None and scales == CROP_SCALES and not whole
    if hinted:
        first = _hinted_all(a[go], b[go], np.asarray(hint)[go], pool)
        out.ncc[go], out.inside_a[go], out.where[go] = first.ncc, first.inside_a, first.where
        go = go[first.ncc < bar]  # the codes may have pointed at the wrong window: all sizes
    if len(go):
        fine = _match_full(a[go], b[go], scales, pool, whole=whole)
        # the full search replaces the coarse score, or betters the hinted one
        take = fine.ncc > out.ncc[go] if hinted else np.ones(len(go), bool)
        rows = go[take]
        out.ncc[rows], out.inside_a[rows], out.where[rows] = fine.ncc[take], fine.inside_a[take], fine.where[take]
    return out


def _hinted_all(a: np.ndarray, b: np.ndarray, hint: np.ndarray, pool: Executor | None) -> CropMatch:
    """:func:`_match_hinted` a HINT_BATCH of pairs at a time (each pair's result is its own):
    its correlation planes are ~100 kB a pair, and 4,096 look-alikes at once held ~0.5 GB."""
    def one(s: int) -> CropMatch:
        return _match_hinted(a[s : s + HINT_BATCH], b[s : s + HINT_BATCH], hint[s : s + HINT_BATCH])

    starts = range(0, len(a), HINT_BATCH)
    parts = list(pool.map(one, starts)) if pool is not None and len(a) > HINT_BATCH else [one(s) for s in starts]
    return CropMatch(np.concatenate([m.ncc for m in parts]), np.concatenate([m.inside_a for m in parts]),
                     np.concatenate([m.where for m in parts]))


def _match_full(a: np.ndarray, b: np.ndarray, scales: tuple[float, ...], pool: Executor | None, *,
                whole: bool) -> CropMatch:
    """:func:`_match_all` without the coarse pass: every size, every offset, at 32x32."""
    side = a.shape[1] if a.ndim == 3 else 0
    sizes = [t for t in _sizes(side, scales) if whole or t != (side, side)]

    def one(s: int) -> CropMatch:
        return _match_batch(a[s : s + CROP_BATCH], b[s : s + CROP_BATCH], sizes, refine=scales in (CROP_SCALES, TILT_SCALES),
                            whole=whole)

    starts = range(0, len(a), CROP_BATCH)
    parts = list(pool.map(one, starts)) if pool is not None and len(a) > CROP_BATCH else [one(s) for s in starts]
    if not parts:
        return CropMatch(np.zeros(0), np.zeros(0, bool), np.zeros((0, 4), np.int64))
    return CropMatch(np.concatenate([m.ncc for m in parts]), np.concatenate([m.inside_a for m in parts]),
                     np.concatenate([m.where for m in parts]))


def crop_aligned(sig_a: np.ndarray, sig_b: np.ndarray, variant: np.ndarray,
                 match: CropMatch | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two layouts of each pair (b in a's orientation) brought to one frame by the crop
    test's placement (``match``, found here when not given): the part of the larger view that
    the other one shows, resampled to the layout's side, and the other layout softened alike."""
    a = np.asarray(sig_a, dtype=np.float32)
    b = orient_layouts(np.asarray(sig_b, dtype=np.float32), np.asarray(variant, dtype=np.int64))
    p = len(a)
    if not p:
        return a, b
    if match is None:
        match = _match_all(a, b, CROP_SCALES, None, whole=False)
    side = a.shape[1]
    out_a, out_b = a.copy(), b.copy()
    for i in range(p):
        into_a = bool(match.inside_a[i])
        big, small = (a[i], b[i]) if into_a else (b[i], a[i])
        th, tw, y, x = (int(v) for v in match.where[i])
        up_rows, up_cols = _bilinear(th, side), _bilinear(tw, side)
        window = up_rows @ big[y : y + th, x : x + tw].astype(np.float64) @ up_cols.T
        # the window was sampled at th x tw cells and enlarged, so it is softer than the other
        # view, and a sharp view against a soft one disagrees in every textured block: the other
        # view is taken part of the way through the same grid (SOFTEN; eval/crops.py and
        # eval/templates.py: the guard refuses 44 of 294 true crops sharp, 5 at half, 4 all the
        # way, which also lets two pictures in one frame through)
        soft = up_rows @ (_bilinear(side, th) @ small.astype(np.float64) @ _bilinear(side, tw).T) @ up_cols.T
        blend = SOFTEN * soft + (1.0 - SOFTEN) * small
        out_a[i], out_b[i] = (window, blend) if into_a else (blend, window)
    return out_a, out_b


def crop_ncc_batch(sig_a: np.ndarray, sig_b: np.ndarray, variant: np.ndarray, *,
                   scales: tuple[float, ...] = CROP_SCALES, pool: Executor | None = None) -> np.ndarray:
    """:func:`crop_match`'s correlations alone: (P,)."""
    return crop_match(sig_a, sig_b, variant, scales=scales, pool=pool).ncc


def crop_ncc(sig_a: np.ndarray, sig_b: np.ndarray, variant: int, *, scales: tuple[float, ...] = CROP_SCALES) -> float:
    """Best normalised cross-correlation of one layout as a crop of the other (:func:`crop_match`).

    ``variant`` is the orientation of b that matches a upright."""
    return float(crop_ncc_batch(sig_a[None], sig_b[None], np.array([variant]), scales=scales)[0])


def verify_batch(
    a: np.ndarray,
    b: np.ndarray,
    p64_dist: np.ndarray,
    *,
    fetch: Callable[[np.ndarray], dict[str, np.ndarray]],
    flags: dict[str, np.ndarray],
    params: VerifyParams,
    load_sigs: Callable[[np.ndarray], np.ndarray],
    crop: bool = True,
    crop_cache: CropCache | None = None,
    pool: Executor | None = None,
    crop_queue: CropQueue | None = None,
) -> Verified:
    """Accept or reject candidate pairs ``(a, b)`` of row ids in one batch.

    ``fetch(rows)`` returns ``d256`` (k, 8, 4), ``colour`` (k, 48) and ``p64`` (k, 8) for
    sorted distinct ``rows``: only the rows of this batch are read, so memory does not grow
    with the collection.  ``flags`` holds the ``low_info`` and ``colourful`` columns of every row.

    Each pair is verified as given: the candidate search hands out each pair once.
    With a ``crop_queue``, the pairs
    that need the crop test are queued there instead (its verdicts come from ``flush``), so the
    test runs on large batches whatever the search's batch sizes.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    rows, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: len(a)], inv[len(a) :]
    cols = fetch(rows)
    d, v = d256_distance(cols["d256"][ia], cols["d256"][ib])
    low = flags["low_info"][a] | flags["low_info"][b]
    cb = orient_colour(cols["colour"][ib], v)
    cdist = colour_distance(cols["colour"][ia], cb)
    colourful = flags["colourful"][a] & flags["colourful"][b]
    colour_ok = ~colourful | (cdist <= params.colour_max)
    thr = np.where(low, params.strict_hash_threshold, params.hash_threshold)
    hash_ok = (d <= thr) & colour_ok & (~low | (cdist <= params.low_info_colour_max))
    # a hash match that disagrees where the pictures are is two pictures in one frame (or two
    # patches on one background): refused, and not given the crop test either
    framed = np.zeros(len(a), dtype=bool)
    if params.frame_guard and hash_ok.any():
        rows_ok = np.flatnonzero(hash_ok)
        framed[rows_ok] = shared_frame(load_sigs(a[rows_ok]), load_sigs(b[rows_ok]), v[rows_ok])
        hash_ok &= ~framed
    stage = np.where(hash_ok, Stage.HASH, 0).astype(np.uint8)  # 0: not accepted (yet)
    ncc = np.full(len(a), np.nan, dtype=np.float32)
    need = np.flatnonzero(~hash_ok & ~low & colour_ok & ~framed) if crop else np.zeros(0, np.int64)
    if need.size and crop_queue is not None:
        crop_queue.add(a[need], b[need], cols["p64"][ia[need]], cols["p64"][ib[need]], d[need], p64_dist[need], cdist[need])
        need = need[:0]
    if need.size and crop_cache is not None:
        known = crop_cache.get(a[need], b[need])  # nan where not cached
        ncc[need] = known
        need = need[np.isnan(known)]
    if need.size:
        sa = load_sigs(a[need])
        sb = load_sigs(b[need])
        pv = crop_variant(sa, sb, cols["p64"][ia[need]], cols["p64"][ib[need]])
        ncc[need] = crop_match(sa, sb, pv, pool=pool).ncc
        if crop_cache is not None:
            crop_cache.put(a[need], b[need], ncc[need])
    crop_ok = (stage == 0) & (ncc >= params.crop_ncc)
    if crop_ok.any():
        rows = np.flatnonzero(crop_ok)
        sa, sb = load_sigs(a[rows]), load_sigs(b[rows])
        pv = crop_variant(sa, sb, cols["p64"][ia[rows]], cols["p64"][ib[rows]])
        crop_ok[rows] = crop_explains(sa, sb, pv, ncc[rows])
        if params.frame_guard:
            crop_ok[rows] &= ~framed_crop(sa, sb, pv)
    stage[crop_ok] = Stage.CROP
    keep = stage > 0
    return Verified(a[keep], b[keep], stage[keep], d[keep], p64_dist[keep].astype(np.int16), cdist[keep], ncc[keep])


@dataclass(frozen=True, slots=True)
class _CropBatch:
    """A flush of the crop queue with what the store holds for it: the pairs and their evidence,
    the crop memo's correlations (nan where none) and the layouts of every distinct row."""

    a: np.ndarray
    b: np.ndarray
    p64_a: np.ndarray  # (P, 8) a's full-frame codes
    p64_b: np.ndarray
    d256: np.ndarray
    p64: np.ndarray
    colour: np.ndarray
    known: np.ndarray  # (P,) float32
    sigs: np.ndarray  # (R, 32, 32) the layouts of the R distinct rows
    at_a: np.ndarray  # (P,) a's place in ``sigs``
    at_b: np.ndarray
    tilts: np.ndarray | None  # (R, 12) the distinct rows' stored tilted-frame codes, if known


class CropQueue:
    """Pairs waiting for the crop test, run a few thousand at a time: the test's cost is per
    batch as much as per pair, and the candidate search hands out batches of any size.

    A full batch is read from the store here, then tested on a thread of its own while the
    search goes on (one batch at a time; its verdicts depend on nothing else): at a million
    images the tests of look-alike pairs took as long as the search (docs/benchmarks.md, "A
    compiled query")."""

    def __init__(self, *, load_sigs: Callable[[np.ndarray], np.ndarray], params: VerifyParams,
                 aspect: np.ndarray | None = None, tilt_codes: np.ndarray | None = None,
                 crop_cache: CropCache | None = None, pool: Executor | None = None, limit: int = 4096) -> None:
        self.load_sigs, self.params, self.crop_cache, self.pool, self.limit = load_sigs, params, crop_cache, pool, limit
        self.aspect = aspect  # width / height of every row: the tilt test needs it
        # (n, 12) every row's stored tilted-frame codes, if known: a batch's rows are copied out
        # (_read), the pages of a file-mapped column dropped after
        self.tilt_codes = tilt_codes
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._n = 0
        self._done: list[Verified] = []
        self._tester: ThreadPoolExecutor | None = None
        # the batch under test on the tester's thread, and its verdicts to come
        self._in_flight: tuple[_CropBatch, Future[tuple[Verified, np.ndarray]]] | None = None

    def add(self, a: np.ndarray, b: np.ndarray, p64_a: np.ndarray, p64_b: np.ndarray, d256: np.ndarray,
            p64: np.ndarray, colour: np.ndarray) -> None:
        """Queue pairs ``(a, b)`` with their 8 full-frame codes each and their evidence so far."""
        self._parts.append((a, b, p64_a, p64_b, d256, p64, colour))
        self._n += len(a)
        while self._n >= self.limit:  # a verify batch may bring several batches' worth
            self._submit()

    def flush(self) -> Verified:
        """The accepted crop pairs of everything queued, with their evidence."""
        try:
            while self._n:
                self._submit()
            self._collect()
        finally:
            if self._tester is not None:
                self._tester.shutdown(wait=True)
                self._tester = None
        done, self._done = self._done, []
        return Verified.concat(done)

    def _submit(self) -> None:
        """Read the queued pairs' evidence, then test them beside the search (once the batch
        before is done: one batch's arrays in flight)."""
        batch = self._read()
        self._collect()
        if self._tester is None:
            self._tester = ThreadPoolExecutor(1, thread_name_prefix="neardup-crop")
        self._in_flight = batch, self._tester.submit(self._test, batch)

    def _collect(self) -> None:
        """The verdicts of the batch being tested, its new correlations written to the memo
        (here: the store is this thread's)."""
        if self._in_flight is None:
            return
        batch, testing = self._in_flight
        verified, crop_ncc = testing.result()
        self._in_flight = None
        todo = np.flatnonzero(np.isnan(batch.known))
        if self.crop_cache is not None and len(todo):
            self.crop_cache.put(batch.a[todo], batch.b[todo], crop_ncc[todo])
        self._done.append(verified)
        return_freed_memory()  # the batch's arrays were made and freed on the tester's and pool's threads

    def _read(self) -> _CropBatch:
        """The first ``limit`` queued pairs (the rest stay queued), with what the store holds
        for them: a batch's arrays grow with its pairs, so none is larger than the limit."""
        a, b, p64_a, p64_b, d, p, c = whole = tuple(np.concatenate(x) for x in zip(*self._parts))
        rest = len(a) - self.limit
        if rest > 0:
            self._parts = [tuple(x[self.limit :] for x in whole)]
            a, b, p64_a, p64_b, d, p, c = (x[: self.limit].copy() for x in whole)
        else:
            self._parts = []
        self._n = max(rest, 0)
        known = np.full(len(a), np.nan, dtype=np.float32)
        if self.crop_cache is not None and len(a):
            known[:] = self.crop_cache.get(a, b)  # nan where not cached
        # look-alikes come in many pairs each: every distinct row is read (and coded) once
        distinct, where = np.unique(np.concatenate([a, b]), return_inverse=True)
        tilts = None
        if self.tilt_codes is not None:
            tilts = take_rows(self.tilt_codes, distinct)
        return _CropBatch(a, b, p64_a, p64_b, d, p, c, known, self.load_sigs(distinct), where[: len(a)], where[len(a) :],
                          tilts)

    def _test(self, x: _CropBatch) -> tuple[Verified, np.ndarray]:
        """The crop and tilt tests of a batch (no store access: it runs beside the search); the
        verdicts, and every pair's crop-test correlation (what the memo keeps)."""
        ncc = x.known.copy()
        todo = np.flatnonzero(np.isnan(ncc))
        sig_a, sig_b = x.sigs[x.at_a], x.sigs[x.at_b]
        placed = len(todo) == len(x.a)  # every pair placed here: its orientation known
        variant, match = np.zeros(0, np.int64), None
        if len(todo):
            codes, turns = turned_window_codes(x.sigs)
            ta, tb = x.at_a[todo], x.at_b[todo]
            variant, hint = crop_hypothesis(sig_a[todo], sig_b[todo], x.p64_a[todo], x.p64_b[todo],
                                            turned_a=(codes[ta], turns[ta]), turned_b=(codes[tb], turns[tb]))
            match = crop_match(sig_a[todo], sig_b[todo], variant, pool=self.pool, hint=hint, bar=self.params.crop_ncc)
            ncc[todo] = match.ncc
        crop_ncc = ncc.copy()
        keep = ncc >= self.params.crop_ncc
        if keep.any():
            rows = np.flatnonzero(keep)
            sa, sb = sig_a[rows], sig_b[rows]
            turn = variant[rows] if placed else crop_variant(sa, sb, x.p64_a[rows], x.p64_b[rows])
            keep[rows] = crop_explains(sa, sb, turn, ncc[rows])
            if self.params.frame_guard:
                keep[rows] &= ~framed_crop(sa, sb, turn, select_match(match, rows) if placed and match is not None else None)
        if self.aspect is not None:
            keep |= self._tilts(x, ncc, keep, sig_a, sig_b)
        verified = Verified(x.a[keep], x.b[keep], np.full(int(keep.sum()), Stage.CROP, np.uint8), x.d256[keep],
                            x.p64[keep].astype(np.int16), x.colour[keep], ncc[keep])
        return verified, crop_ncc

    def _tilts(self, x: _CropBatch, ncc: np.ndarray, keep: np.ndarray, sig_a: np.ndarray, sig_b: np.ndarray
               ) -> np.ndarray:
        """Pairs the crop test refused that stand as a tilt of one another (their correlation
        written into ``ncc``).  Not memoised: it is as cheap as one crop test."""
        assert self.aspect is not None
        rows = np.flatnonzero(~keep)
        out = np.zeros(len(x.a), dtype=bool)
        if not len(rows):
            return out
        a, b = x.a[rows], x.b[rows]
        ok, tilt_ncc = tilt_accepted(sig_a[rows], sig_b[rows], self.aspect[a], self.aspect[b], x.p64_a[rows],
                                     x.p64_b[rows], self.params.crop_ncc, frame_guard=self.params.frame_guard,
                                     pool=self.pool, untilted=ncc[rows],
                                     codes_a=None if x.tilts is None else x.tilts[x.at_a[rows]],
                                     codes_b=None if x.tilts is None else x.tilts[x.at_b[rows]])
        out[rows[ok]] = True
        ncc[rows[ok]] = tilt_ncc[ok]
        return out


@dataclass(frozen=True, slots=True)
class TiltHypothesis:
    """The likeliest tilt between the two images of each pair (:func:`tilt_views`)."""

    view_a: np.ndarray  # (P, 32, 32): a's layout, tilted where a is the tilted one
    view_b: np.ndarray  # (P, 32, 32): b's likewise
    variant: np.ndarray  # (P,) b's orientation against a
    b_tilted: np.ndarray  # (P,) bool: the tilt was put on b (else on a)
    view: np.ndarray  # (P,) int64: which tilted view, 2 * angle index + trim (features.windows.tilted_layouts)


def tilt_views(sig_a: np.ndarray, sig_b: np.ndarray, aspect_a: np.ndarray, aspect_b: np.ndarray,
               p64_a: np.ndarray, p64_b: np.ndarray, codes_a: np.ndarray | None = None,
               codes_b: np.ndarray | None = None) -> TiltHypothesis:
    """For pairs the crop test refused: the likeliest tilt between them, as two layouts to give
    the crop test and b's orientation.  Either image may be the tilted one; each is tilted by
    every angle and trim of features.windows.tilted_layouts, and the tilted layout whose code
    (in any orientation) is nearest the other image's code (in any of its orientations) is the
    hypothesis.  ``codes_a``, ``codes_b``: the (P, 12) tilted-frame codes the extractor stored
    (the same codes, from the same layouts); with them only the chosen view of each pair is
    tilted, not all 12 of both images (docs/benchmarks.md, "Memory at scale")."""
    p = len(sig_a)
    if not p:
        empty = np.zeros((0, 32, 32), np.float32)
        return TiltHypothesis(empty, empty, np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64))
    sig_a, sig_b = np.asarray(sig_a, np.float32), np.asarray(sig_b, np.float32)
    made = codes_a is None or codes_b is None
    if made:
        tilted_a, tilted_b = tilted_layouts(sig_a, aspect_a), tilted_layouts(sig_b, aspect_b)  # (P, T, 32, 32)
        codes_a, turn_a = frame_codes(tilted_a)  # (P, T): a tilted by k, turned by u
        codes_b, turn_b = frame_codes(tilted_b)
    codes_a, codes_b = np.asarray(codes_a, np.uint64), np.asarray(codes_b, np.uint64)
    p64_a, p64_b = np.asarray(p64_a, np.uint64), np.asarray(p64_b, np.uint64)
    t = codes_a.shape[1]
    dist = np.concatenate([np.bitwise_count(codes_a[:, :, None] ^ p64_b[:, None, :]).reshape(p, -1),
                           np.bitwise_count(codes_b[:, :, None] ^ p64_a[:, None, :]).reshape(p, -1)], axis=1)
    best = dist.argmin(axis=1)
    rows = np.arange(p)
    b_tilted, k, other = best // (t * 8) == 1, (best % (t * 8)) // 8, best % 8
    if made:
        view = np.where(b_tilted[:, None, None], tilted_b[rows, k], tilted_a[rows, k])
        turn = np.where(b_tilted, turn_b[rows, k], turn_a[rows, k]).astype(np.int64)
    else:
        view = _tilted_each(np.where(b_tilted[:, None, None], sig_b, sig_a), np.where(b_tilted, aspect_b, aspect_a),
                            np.asarray(TILT_ANGLES)[k // 2], k % 2)
        turn = frame_codes(view)[1].astype(np.int64)
    # a tilted ~ b turned by c: b turned by c then by u's inverse; b tilted ~ a turned by c:
    # b turned by u then by c's inverse (as crop_variant reads windows)
    variant = np.where(b_tilted, compose(turn, INVERSE[other]), compose(other, INVERSE[turn]))
    view_a = np.where(~b_tilted[:, None, None], view, sig_a)
    view_b = np.where(b_tilted[:, None, None], view, sig_b)
    return TiltHypothesis(view_a, view_b, variant, b_tilted, k)


#: whole layouts this alike are one picture re-encoded, though the 256-bit hash refused it: a
#: re-encode leaves the 32x32 area averages all but unchanged (q60 re-saves of 96x72 images
#: 0.9996-0.9997, tests/test_scan.py; the dev set's JPEG re-saves >= 0.999); two pictures in one
#: frame reach 0.984 (eval/templates.py, seeds 5 and 6: 2,516 pairs the hash refused), a small
#: slot in a strong synthetic frame 0.9953 (tests/test_templates.py)
WHOLE_NCC = 0.998

#: how much better than the whole frames a crop must fit: the crop test searches 25 sizes or
#: more and every offset, so a pair that fits as it is also fits as a near-whole crop, a little
#: better (two slides of one template with other pictures: 0.0044).  eval/crops.py's own crops
#: (not the dev set) that pass gain 0.016 or more but for 2 of 294; the same margin as TILT_GAIN
CROP_GAIN = 0.01

#: how much better than the untilted fit a tilted one must be: the tilt hypothesis is searched
#: over 12 views, two refinements, sizes and places, so a pair that fits as it is also fits
#: turned, within this.  eval/crops.py's own tilts (not the dev set) gain 0.017 or more (5% of
#: them under 0.025); different pictures in one frame (eval/templates.py --seed 6) gain at most
#: 0.0073
TILT_GAIN = 0.01

#: the tilt test tries again half a step of TILT_ANGLES either side of the likeliest angle, for
#: pairs it refused at >= REFINE_FROM: a tilt between two searched angles loses correlation to
#: the misfit, as a crop between two sizes does (eval/crops.py measures the gain and what it
#: lets through among unrelated pairs)
TILT_REFINE = 1.25


def _tilted_each(sig: np.ndarray, aspect: np.ndarray, degrees: np.ndarray, trim: np.ndarray) -> np.ndarray:
    """(P, 32, 32): each layout tilted by its own angle, with its own trim (tilted_layouts'
    second axis), one batch per distinct angle."""
    out = np.empty((len(sig), SIDE, SIDE), np.float32)
    for deg in np.unique(degrees).tolist():
        at = np.flatnonzero(degrees == deg)
        out[at] = tilted_layouts(sig[at], aspect[at], (deg,))[np.arange(len(at)), trim[at]]
    return out


def _refined_views(h: TiltHypothesis, sig_a: np.ndarray, sig_b: np.ndarray, aspect_a: np.ndarray,
                   aspect_b: np.ndarray, rows: np.ndarray, offset: float) -> TiltHypothesis:
    """The hypotheses of ``rows`` with the tilt moved by ``offset`` degrees (same trim)."""
    angle = np.asarray(TILT_ANGLES)[h.view[rows] // 2] + offset * np.sign(np.asarray(TILT_ANGLES)[h.view[rows] // 2])
    on_b = h.b_tilted[rows]
    sig = np.where(on_b[:, None, None], np.asarray(sig_b, np.float32)[rows], np.asarray(sig_a, np.float32)[rows])
    view = _tilted_each(sig, np.where(on_b, aspect_b[rows], aspect_a[rows]), angle, h.view[rows] % 2)
    view_a = np.where(on_b[:, None, None], h.view_a[rows], view)
    view_b = np.where(on_b[:, None, None], view, h.view_b[rows])
    return TiltHypothesis(view_a, view_b, h.variant[rows], h.b_tilted[rows], h.view[rows])


def tilt_accepted(sig_a: np.ndarray, sig_b: np.ndarray, aspect_a: np.ndarray, aspect_b: np.ndarray,
                  p64_a: np.ndarray, p64_b: np.ndarray, bar: float, *, frame_guard: bool = True,
                  pool: Executor | None = None, untilted: np.ndarray | None = None,
                  codes_a: np.ndarray | None = None, codes_b: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(accepted, correlation) of the tilt hypothesis of each pair (:func:`tilt_views`): the
    crop test at the same bar on the tilted layout, and the frame guard where it is placed;
    where that comes close, the same at half a step of angle either side.  ``untilted``: the
    pairs' crop-test correlations, when known (found here otherwise)."""
    n = len(sig_a)
    if n > PAIR_CHUNK:  # bounded memory: the tilted views are ~100 kB a pair
        parts = [tilt_accepted(sig_a[s : s + PAIR_CHUNK], sig_b[s : s + PAIR_CHUNK], aspect_a[s : s + PAIR_CHUNK],
                               aspect_b[s : s + PAIR_CHUNK], p64_a[s : s + PAIR_CHUNK], p64_b[s : s + PAIR_CHUNK], bar,
                               frame_guard=frame_guard, pool=pool,
                               untilted=None if untilted is None else untilted[s : s + PAIR_CHUNK],
                               codes_a=None if codes_a is None else codes_a[s : s + PAIR_CHUNK],
                               codes_b=None if codes_b is None else codes_b[s : s + PAIR_CHUNK])
                 for s in range(0, n, PAIR_CHUNK)]
        return np.concatenate([ok for ok, _ in parts]), np.concatenate([c for _, c in parts])
    sig_a, sig_b = np.asarray(sig_a, np.float32), np.asarray(sig_b, np.float32)
    aspect_a, aspect_b = np.asarray(aspect_a, np.float64), np.asarray(aspect_b, np.float64)
    h = tilt_views(sig_a, sig_b, aspect_a, aspect_b, p64_a, p64_b, codes_a, codes_b)
    # a tilt must explain the pair better than no tilt does, by more than its own freedom buys:
    # two pictures in one frame match best as they are (whole, or by the crop test), and a view
    # turned a degree or two, searched over sizes and places, comes within TILT_GAIN of that
    if untilted is None:
        untilted = crop_match(sig_a, sig_b, crop_variant(sig_a, sig_b, p64_a, p64_b)).ncc
    baseline = np.maximum(np.asarray(untilted, np.float64), _whole_ncc(sig_a, orient_layouts(sig_b, h.variant)))
    bar_of = np.maximum(bar, baseline + TILT_GAIN)
    ok, ncc = _tilt_verdict(h, bar_of, frame_guard, pool)
    # only pairs that fell short of the bar: one the frame guard refused is two pictures in one
    # frame until shown otherwise, and turning it further would only blur the frame's evidence
    again = np.flatnonzero(~ok & (ncc >= REFINE_FROM) & (ncc < bar_of))
    for offset in (-TILT_REFINE, TILT_REFINE):
        if not len(again):
            break
        moved = _refined_views(h, sig_a, sig_b, aspect_a, aspect_b, again, offset)
        got, score = _tilt_verdict(moved, bar_of[again], frame_guard, pool)
        ok[again[got]] = True
        ncc[again] = np.where(got, score, np.maximum(ncc[again], score))
        again = again[~got & (score < bar_of[again])]
    return ok, ncc


def _whole_ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) correlation of two stacks of layouts as they are, whole frame to whole frame."""
    x = np.asarray(a, np.float64).reshape(len(a), -1)
    y = np.asarray(b, np.float64).reshape(len(b), -1)
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1) + 1e-9)


def _tilt_verdict(h: TiltHypothesis, bar: np.ndarray, frame_guard: bool, pool: Executor | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    match = _match_all(h.view_a, orient_layouts(h.view_b, h.variant), TILT_SCALES, pool, whole=True)
    ok = match.ncc >= bar
    if frame_guard and ok.any():
        rows = np.flatnonzero(ok)
        ok[rows] = ~framed_crop(h.view_a[rows], h.view_b[rows], h.variant[rows], select_match(match, rows))
    return ok, match.ncc.copy()


def crop_explains(sig_a: np.ndarray, sig_b: np.ndarray, variant: np.ndarray, ncc: np.ndarray) -> np.ndarray:
    """Mask of crop matches that fit better than the whole frames do (by CROP_GAIN): a crop of a
    copy beats the uncropped comparison; two pictures in one frame match best as they are, the frame being most
    of both, and the crop test's near-whole placements only come close (eval/templates.py).
    Whole frames that agree to WHOLE_NCC are one picture re-encoded, whatever the crop test says."""
    if not len(ncc):
        return np.zeros(0, dtype=bool)
    b = orient_layouts(np.asarray(sig_b, dtype=np.float32), np.asarray(variant, dtype=np.int64))
    whole = _whole_ncc(sig_a, b)
    return (np.asarray(ncc) > whole + CROP_GAIN) | (whole >= WHOLE_NCC)


def select_match(match: CropMatch, rows: np.ndarray) -> CropMatch:
    """The verdicts of ``rows`` only."""
    return CropMatch(match.ncc[rows], match.inside_a[rows], match.where[rows])


def framed_crop(sig_a: np.ndarray, sig_b: np.ndarray, variant: np.ndarray, match: CropMatch | None = None) -> np.ndarray:
    """Mask of crop matches that are two pictures in one frame: the frame guard
    (verify/template.py) on the two layouts as the crop test placed them (``match``)."""
    return aligned_frame(*crop_aligned(sig_a, sig_b, variant, match))


def hash_colour(a: np.ndarray, b: np.ndarray, fetch: Callable[[np.ndarray], dict[str, np.ndarray]]
                ) -> tuple[np.ndarray, np.ndarray]:
    """256-bit distance and colour distance of pairs, for the evidence of pairs that other
    stages decide."""
    rows, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: len(a)], inv[len(a) :]
    cols = fetch(rows)
    d, v = d256_distance(cols["d256"][ia], cols["d256"][ib])
    return d, colour_distance(cols["colour"][ia], orient_colour(cols["colour"][ib], v))
