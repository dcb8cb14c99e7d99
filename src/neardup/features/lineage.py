"""Whether a file's pixels were decoded from a JPEG before they were saved as they are.

A JPEG stores each 8x8 block's DCT coefficients as multiples of its quantisation table.  Once
decoded, those multiples survive in the pixels: the block DCT of the decoded image sits on
that lattice, give or take the pixels' rounding (about 0.3 in coefficient units).  So

* a lossless file (PNG, TIFF, ...) saved from a decoded JPEG still holds that JPEG's lattice
  (Fan and de Queiroz, *Identification of bitmap compression history*, 2003);
* a JPEG saved again from a decoded JPEG at a finer table holds the coarser first lattice in
  its own coefficients: its histograms have empty bins where no multiple of the first step can
  land (Lukas and Fridrich, *Estimation of primary quantization matrix in double compressed
  JPEG images*, 2003; Popescu and Farid, 2004).

Neither is better than the file it was made from, so the keeper must not prefer it for its
"lossless" format or its higher quality number (:mod:`neardup.group.keeper`).

Both tests read the same thing, a histogram per low-frequency position of the luma
coefficients divided by the file's own steps (1 for a lossless file), and ask one question:
is the mass that a first quantisation with steps ``Q1`` would leave empty really missing?  The
*gap ratio* is the observed count in those bins over what their neighbours predict: about 1
for an image quantised once, near 0 for one that carries ``Q1``'s lattice.  Nothing here is
fitted to a data set: the bins counted as gaps are those at least :data:`GAP_MARGIN` (about
1.5 rounding deviations) from any multiple of ``Q1``, and a ratio under :data:`GAP_RATIO` is
evidence (``eval/lineage.py`` shows the two populations on generated re-saves).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from ..config import MAX_PIXELS
from . import jpeg
from .decode import is_lossless

__all__ = ["BlockCoefficients", "block_coefficients", "gap_ratio", "carries_table", "estimate_primary_steps",
           "primary_quality", "LINEAGE_VERSION", "GAP_RATIO"]

#: part of the cache key of every verdict made here
LINEAGE_VERSION = "lineage-2"
#: the central region analysed, at most this many pixels a side (4,096 blocks: hundreds of counts
#: in every low-frequency bin; a 481x321 photo has 2,400 blocks in all)
REGION = 512
#: a grid phase whose block-edge step beats the next by this factor is taken alone
PHASE_CONTRAST = 1.05
#: low-frequency positions used, in zigzag order (1..20: the AC coefficients every photo fills)
ZIGZAG_USED = range(1, 21)
#: histogram bins kept per position (|k| above this is rare and carries little)
BINS = 48
#: a bin is a gap when its edge is at least this far (coefficient units) from any multiple of
#: the first step: rounding spreads a coefficient by ~0.3 (pixels) to ~0.4 (pixels and colour
#: conversion), so ~1.3-1.7 deviations
GAP_MARGIN = 0.5
#: the spread rounding a decoded JPEG's pixels to integers adds to its coefficients: uniform
#: rounding of 64 pixels (variance 1/12 each) under an orthonormal transform, plus the colour
#: conversion's own rounding
ROUNDING_SD = 0.35
#: the gap ratio below which a lattice counts as present: a once-quantised image fills its gaps
#: as its neighbours predict (ratio ~1), a re-saved one leaves them near empty; 0.4 leaves room
#: for leakage at the margin and for sparse bins either way
GAP_RATIO = 0.4
#: the periodicity at which a lossless file's coefficients count as sitting on a lattice
PERIODIC = 0.5
#: a lossless file carries a table when its estimated first steps are that table's at this share
#: of the positions where one was found (exactly: the estimate reads whole steps), and at no
#: fewer than MIN_POSITIONS of them
AGREEMENT = 0.75
MIN_POSITIONS = 5
#: a JPEG carries a rival's table when that table fits within this share of the best-fitting
#: IJG table: neighbouring qualities' tables differ in a few steps, and their fits by a few per
#: cent; a JPEG made from another fits that one's table clearly better
FIT_TOLERANCE = 0.05
#: steps whose periodicity is within this of the best are read as the same lattice (the
#: divisors of the true step, which score as high up to noise); a step one off the true one
#: scores at least ~0.1 lower for steps up to ~20
STEP_TOLERANCE = 0.05
#: positions (indices into ZIGZAG_USED) read first in a lossless file: those whose steps are
#: largest in every IJG table, so a lattice shows there first even at quality 90
QUICK = slice(9, 17)
#: the predicted gap mass needed before a ratio means anything (Poisson noise of the count)
MIN_EXPECTED = 40.0

# zigzag position -> natural (row-major) index
_NATURAL = np.argsort(jpeg.ZIGZAG)
_USED = np.array([_NATURAL[z] for z in ZIGZAG_USED], dtype=np.intp)
_LUMA = np.array([0.299, 0.587, 0.114])


@lru_cache(maxsize=1)
def _dct8() -> np.ndarray:
    """The orthonormal 8-point DCT-II, which is JPEG's FDCT (ITU-T T.81, A.3.3)."""
    u = np.arange(8)[:, None]
    x = np.arange(8)[None, :]
    d = np.cos((2 * x + 1) * u * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


@lru_cache(maxsize=1)
def _dct_used() -> np.ndarray:
    """(P, 64): the 2-D DCT basis at the used positions, acting on a block flattened row-major."""
    d = _dct8()
    return np.kron(d, d)[_USED]


@dataclass(frozen=True, slots=True)
class BlockCoefficients:
    """One file's block-DCT luma coefficients at the used positions.

    ``aligned`` (n, P) are taken on the file's block grid (a JPEG's own, or a likely origin of
    an earlier JPEG's in a lossless file); for a JPEG, ``calibrated`` (m, P) are taken on a grid
    shifted by 4 pixels each way, where its own quantisation is not aligned: an estimate of the
    distribution before the file was quantised (Fridrich's calibration).  ``table`` is a JPEG's
    own luma table (natural order), None for a lossless file.
    """

    aligned: np.ndarray
    calibrated: np.ndarray | None
    table: np.ndarray | None
    steps: np.ndarray | None = None  # lossless: the first steps found at each position (0: none)

    @property
    def own(self) -> np.ndarray:
        """The file's own step at each used position (1 for a lossless file)."""
        if self.table is None:
            return np.ones(len(_USED))
        return np.maximum(self.table[_USED].astype(np.float64), 1.0)

    @property
    def hist(self) -> np.ndarray:
        """(P, BINS + 1): blocks whose coefficient at a position is ``j`` own steps from zero."""
        return _histograms(self.aligned, self.own)


def _central(a: np.ndarray, side: int) -> np.ndarray:
    """A central crop of at most ``side`` pixels a side whose corner is on the 8-pixel grid of
    ``a`` (so a JPEG's own blocks stay blocks)."""
    h, w = a.shape[:2]
    y0 = max(0, (h - side) // 2) // 8 * 8
    x0 = max(0, (w - side) // 2) // 8 * 8
    return a[y0 : y0 + side, x0 : x0 + side]


def _luma(data: bytes, max_pixels: int) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]] | None:
    """The luma of a central region (REGION plus a block, in stored orientation, at full
    resolution), the JPEG's own luma table (natural order) or None for other formats, and where
    the region sits, ``(top, left, height, width)`` of the whole image; None where this cannot
    be read."""
    side = REGION + 16
    if data[:3] == jpeg.SOI:
        hdr = jpeg.read_header(data)
        if hdr is None or hdr.table is None or hdr.width * hdr.height > max_pixels:
            return None
        y = jpeg.decode_scaled(data, hdr, 1, grey=True)  # the decoder's Y plane itself
        if y is None:
            return None
        return _central(y, side).astype(np.float64), hdr.table, (0, 0, 0, 0)


    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels or not is_lossless(im) or im.format == "GIF" or \
                    im.mode not in ("RGB", "RGBA", "L"):
                return None  # a lossy re-encode, a palette or a 16-bit image holds no lattice worth reading
            x0, y0 = max(0, (im.width - side) // 2), max(0, (im.height - side) // 2)
            region = im.crop((x0, y0, min(im.width, x0 + side), min(im.height, y0 + side)))
            a = np.asarray(region.convert("RGB") if region.mode != "L" else region, dtype=np.float64)
            where = (y0, x0, im.height, im.width)
    except Exception:  # noqa: BLE001 - unreadable here means "no evidence", never a failure
        return None
    return (a if a.ndim == 2 else a @ _LUMA), None, where


def _blocks(y: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """DCT coefficients (n, P) at the used positions of the 8x8 blocks of a central region of
    ``y`` whose grid starts at row ``dy``, column ``dx`` (mod 8)."""
    h, w = y.shape
    side_y, side_x = min(REGION, h - dy) // 8 * 8, min(REGION, w - dx) // 8 * 8
    if side_y < 8 or side_x < 8:
        return np.zeros((0, len(_USED)))
    y0 = dy + ((h - dy - side_y) // 2) // 8 * 8
    x0 = dx + ((w - dx - side_x) // 2) // 8 * 8
    region = y[y0 : y0 + side_y, x0 : x0 + side_x] - 128.0
    b = region.reshape(side_y // 8, 8, side_x // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    return b @ _dct_used().T  # one product for all blocks: (n, 64) @ (64, P)


def _grid_offsets(y: np.ndarray, where: tuple[int, ...]) -> list[tuple[int, int]]:
    """Likely block-grid origins (in ``y``) of a lossless image cut from a whole one at
    ``where``: those of the whole image turned or flipped any way (its grid starts at 0 or at
    the size mod 8 on each axis), then the two row and column phases with the strongest steps
    across them (JPEG blocks leave edges on their boundaries, wherever a crop put them; at high
    qualities the edges are too faint to find, hence the geometric origins first)."""
    top, left, height, width = where
    geometric = [((r - top) % 8, (c - left) % 8) for r in sorted({0, height % 8}) for c in sorted({0, width % 8})]
    edges = [g for g in _edge_offsets(y) if g not in geometric]
    return geometric + edges


def _edge_offsets(y: np.ndarray) -> list[tuple[int, int]]:
    """The two row and column phases of ``y`` with the strongest steps across them."""
    def phases(axis: int) -> list[int]:
        diff = np.abs(np.diff(y, axis=axis))
        prof = diff.mean(axis=1 - axis)  # mean step between index i and i+1 along axis
        score = np.array([prof[(k - 1) % 8 :: 8].mean() if len(prof[(k - 1) % 8 :: 8]) else 0.0 for k in range(8)])
        order = np.argsort(-score)
        # a JPEG's block edges make one phase stand out; two close ones are both tried
        clear = score[order[0]] > PHASE_CONTRAST * score[order[1]]
        return [int(k) for k in order[: 1 if clear else 2]]

    return [(r, c) for r in phases(0) for c in phases(1)]


def _histograms(coef: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Histograms (P, BINS + 1) of ``|coef| / own`` rounded, per column (one bincount for all)."""
    k = np.minimum(np.rint(np.abs(coef) / own[None, :]).astype(np.int64), BINS + 1)
    width = BINS + 2
    flat = np.bincount((k + np.arange(k.shape[1])[None, :] * width).ravel(), minlength=k.shape[1] * width)
    return flat.reshape(k.shape[1], width)[:, : BINS + 1].astype(np.float64)


def block_coefficients(data: bytes, *, max_pixels: int = MAX_PIXELS) -> list[BlockCoefficients]:
    """The coefficient histograms of a file: one for a JPEG (its own grid), one per likely grid
    origin for a lossless file (whose grid, after a flip or crop, need not start at 0).  Empty
    where the file cannot be analysed."""
    got = _luma(data, max_pixels)
    if got is None:
        return []
    y, table, where = got
    if table is not None:
        coef = _blocks(y, 0, 0)
        return [BlockCoefficients(coef, _blocks(y, 4, 4), table)] if len(coef) else []
    out = []
    for dy, dx in _grid_offsets(y, where):
        coef = _blocks(y, dy, dx)
        # a grid whose QUICK positions show no lattice holds none: the rest is not read; an
        # earlier JPEG left its lattice on one grid only, so the first that holds one is it
        if len(coef) and (_primary_steps(coef[:, QUICK]) > 0).sum() >= 2:
            out.append(BlockCoefficients(coef, None, None, _primary_steps(coef)))
            break
    return out


def _bin_classes(own: float, first: float) -> tuple[np.ndarray, np.ndarray]:
    """Which bins 0..BINS (of width ``own``) a first step ``first`` leaves empty, and which it
    fills for sure.

    A *gap* bin's interval ``[(j - 1/2) own, (j + 1/2) own]`` stays at least GAP_MARGIN from
    every multiple ``m * first``; a *peak* bin holds a multiple at least GAP_MARGIN inside its
    edges.  Bins between (a multiple near an edge, split by rounding) are read as neither.
    """
    j = np.arange(BINS + 1, dtype=np.float64)
    lo, hi = (j - 0.5) * own, (j + 0.5) * own
    below = np.floor((lo - GAP_MARGIN) / first) * first  # the last multiple below the bin
    gap = (below < lo - GAP_MARGIN) & (below + first > hi + GAP_MARGIN)
    gap[0] = False
    nearest = np.round(j * own / first) * first
    peak = (nearest >= lo + GAP_MARGIN) & (nearest <= hi - GAP_MARGIN)
    peak[0] = True
    return gap, peak


def _position_gap(h: np.ndarray, own: float, first: float) -> tuple[float, float]:
    """(observed, expected) counts in the gaps of one position's histogram ``h``.

    A gap bin's expected count is interpolated log-linearly between the nearest peak bins on
    either side: coefficient histograms fall off exponentially (Laplacian), where a straight
    chord would over-predict the bins between and read a steep histogram as empty gaps.
    """
    if first <= own:
        return 0.0, 0.0  # a first step no coarser than the own one leaves no gaps to read
    gap, peak = _bin_classes(own, first)
    idx = np.flatnonzero(gap)
    full = np.flatnonzero(peak)
    right_pos = np.searchsorted(full, idx)
    ok = (right_pos > 0) & (right_pos < len(full))  # a gap needs a peak on either side
    idx, right_pos = idx[ok], right_pos[ok]
    if not len(idx):
        return 0.0, 0.0
    left, right = full[right_pos - 1], full[right_pos]
    t = (idx - left) / (right - left)
    logh = np.log(h + 0.5)
    pred = np.exp(logh[left] * (1 - t) + logh[right] * t) - 0.5
    return float(h[idx].sum()), float(np.maximum(pred, 0.0).sum())


def gap_ratio(hist: np.ndarray, own: np.ndarray, first: np.ndarray) -> tuple[float, float]:
    """(observed, expected) counts in the gaps that first steps ``first`` (per position) leave
    in histograms ``hist`` of own step ``own``.  Expected is interpolated from the nearest
    non-gap bins on either side, per gap."""
    observed = expected = 0.0
    for p in range(hist.shape[0]):
        obs, exp = _position_gap(hist[p], float(own[p]), float(first[p]))
        observed += obs
        expected += exp
    return observed, expected


def _requantised_fit(c: BlockCoefficients, model: tuple[np.ndarray, np.ndarray, np.ndarray],
                     first: np.ndarray) -> tuple[float, float, float]:
    """How a JPEG's histograms fit "quantised once, with its own table" (d0) against "first with
    ``first``, then with its own" (d1), both simulated on its calibrated coefficients; and how
    far apart the two predictions are (what the comparison can tell at most)."""
    assert c.calibrated is not None and c.table is not None
    own = c.own
    use = first > own  # a first step no coarser than the own one leaves no trace to read
    if not use.any():
        return 0.0, 0.0, 0.0
    observed, once, noise = model
    cal = c.calibrated[:, use]
    twice = _histograms(np.rint(cal / first[use]) * first[use] + noise[:, use], own[use])[:, 1:]
    twice *= len(c.aligned) / max(len(c.calibrated), 1)
    observed, once = observed[use], once[use]
    return (float(np.abs(observed - once).sum()), float(np.abs(observed - twice).sum()),
            float(np.abs(twice - once).sum()))


def _jpeg_model(c: BlockCoefficients) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What every hypothesis about a JPEG shares: its observed histograms, the "quantised once"
    prediction (both without bin 0, which calibration blurs alike for either hypothesis) and the
    rounding noise the "twice" simulation adds (seeded: the verdict is repeatable)."""
    assert c.calibrated is not None
    scale = len(c.aligned) / max(len(c.calibrated), 1)
    # decoding the first JPEG rounds its pixels: the requantised coefficients carry that noise
    noise = np.random.default_rng(0).normal(0.0, ROUNDING_SD, c.calibrated.shape)
    return _histograms(c.aligned, c.own)[:, 1:], _histograms(c.calibrated, c.own)[:, 1:] * scale, noise


def _fits(c: BlockCoefficients, model: tuple[np.ndarray, np.ndarray, np.ndarray], first: np.ndarray) -> float | None:
    """The misfit d1 of "first quantised with ``first``" to a JPEG's histograms, relative to
    "quantised once" (d1 / d0, under 1 when the first fits better); None when the two
    simulations hardly differ (the comparison cannot tell)."""
    d0, d1, sep = _requantised_fit(c, model, first)
    return d1 / d0 if sep >= MIN_EXPECTED and d0 > 0 else None


def carries_table(coeffs: list[BlockCoefficients], table: np.ndarray) -> bool | None:
    """Whether the file's pixels were made from a JPEG quantised with ``table`` (64 values,
    natural order; also tried transposed, for a copy turned a quarter); None when the counts
    cannot tell.

    A lossless file: its first steps, estimated position by position
    (:func:`estimate_primary_steps`), must be ``table``'s at :data:`AGREEMENT` of the positions
    where one was found.  A JPEG: "first quantised with ``table``, then with its own" must fit
    its histograms better than "quantised once" (:func:`_requantised_fit`) and no worse than
    first quantised with any IJG table of another quality (within :data:`FIT_TOLERANCE`): a
    JPEG made from some other JPEG fits that one's table best, not the rival's.
    """
    t = np.asarray(table, dtype=np.float64)
    candidates = (t[_USED], t.reshape(8, 8).T.reshape(64)[_USED])
    verdict: bool | None = None
    for c in coeffs:
        if c.steps is not None:
            steps = c.steps
            known = steps > 0
            if known.sum() < MIN_POSITIONS:
                continue
            agree = max(float((steps[known] == first[known]).mean()) for first in candidates)
            got = agree >= AGREEMENT
        else:
            model = _jpeg_model(c)
            fits = [f for f in (_fits(c, model, first) for first in candidates) if f is not None]
            if not fits:
                continue
            got = min(fits) < 1.0
            if got:  # only then is it worth asking whether another first table fits better still
                own_q = jpeg.quality_from_table(c.table)  # type: ignore[arg-type]
                others = [f for q in range(1, own_q) if (f := _fits(c, model, jpeg.ijg_table(q)[_USED])) is not None]
                got = min(fits) <= min(others, default=np.inf) * (1 + FIT_TOLERANCE)
        if got:
            return True
        verdict = False
    return verdict


def estimate_primary_steps(coeffs: list[BlockCoefficients]) -> np.ndarray:
    """For each used position of a lossless file, the first step whose lattice it carries (0
    where none is found), the largest over the grid origins tried."""
    found = [c.steps for c in coeffs if c.steps is not None]
    return np.max(found, axis=0) if found else np.zeros(len(_USED))


#: magnitudes are binned at 1/RESOLUTION for the periodicity of every step at once
RESOLUTION = 16
#: magnitudes up to this are read (AC coefficients beyond it are rare and carry little)
MAGNITUDE_CAP = 512
MAX_STEP = 64


@lru_cache(maxsize=1)
def _step_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For steps 2..MAX_STEP and magnitude bins: cos(2 pi c / step) at the bin centre where the
    step counts the bin (c >= step / 2), else 0; which bins each step counts; the steps."""
    steps = np.arange(2, MAX_STEP + 1, dtype=np.float64)
    centre = (np.arange(MAGNITUDE_CAP * RESOLUTION) + 0.5) / RESOLUTION
    counts = (centre[None, :] >= steps[:, None] / 2).astype(np.float64)
    cos = np.cos(2 * np.pi * centre[None, :] / steps[:, None]) * counts
    return cos, counts, steps


def _primary_steps(aligned: np.ndarray) -> np.ndarray:
    """The first step whose lattice coefficients ``aligned`` (n, P) sit on, per position.

    Every divisor of the true step scores as high a periodicity as the step itself, its
    multiples score low (their odd multiples sit half a period off), and a step just off it
    scores a little lower (``cos(2 pi Q / s)`` for the commonest coefficient, one step from
    zero): so the estimate is the largest step within :data:`STEP_TOLERANCE` of the best score,
    if that reaches :data:`PERIODIC` over enough coefficients.  Every step is scored at once,
    from a histogram of the magnitudes (1/16 of a unit wide: a phase error of at most 0.2 rad
    at step 2).
    """
    cos, counts, steps = _step_tables()
    bins = np.minimum((np.abs(aligned) * RESOLUTION).astype(np.int64), MAGNITUDE_CAP * RESOLUTION)
    width = MAGNITUDE_CAP * RESOLUTION + 1
    hist = np.bincount((bins + np.arange(aligned.shape[1])[None, :] * width).ravel(),
                       minlength=aligned.shape[1] * width).reshape(aligned.shape[1], width)[:, :-1].astype(np.float64)
    n = hist @ counts.T  # (P, steps)
    score = np.where(n >= MIN_EXPECTED, (hist @ cos.T) / np.maximum(n, 1.0), -np.inf)
    top = score.max(axis=1)
    best = np.zeros(aligned.shape[1])
    for p in np.flatnonzero(top >= PERIODIC).tolist():
        best[p] = float(steps[np.flatnonzero(score[p] >= top[p] - STEP_TOLERANCE).max()])
    return best


def primary_quality(coeffs: list[BlockCoefficients]) -> int:
    """The IJG quality of an earlier JPEG compression a lossless file's pixels went through, 0
    if none is found: the quality whose table best matches the first steps estimated at half or
    more of the used positions."""
    steps = estimate_primary_steps(coeffs)
    known = steps > 0
    if known.sum() < len(steps) // 2:
        return 0
    table = np.zeros(64)
    table[_USED] = steps
    return jpeg.quality_from_table(table, positions=_USED[known])
