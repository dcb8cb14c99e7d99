"""The keeper's detail check: extra pixels must be proved, at full size, where they decide.

Extraction decodes every image at a reduced size, where an upscaled copy looks as sharp as its
original; the keeper's score would then prefer it for its pixels.  So after grouping, a member
that would win on pixels over a smaller one is asked to prove them: it is decoded again at a
scale above the smaller one's size, and so is the smaller one, and their softness (gradient
at half over full resolution, ``features.decode.softness_of``) is compared.

Upscaling by ``u`` leaves a photo's headroom ``2 - softness`` at about ``u ** -1.3`` of what
it was (``eval/upscale_softness.py`` measures this on the CC0 photos).  So the larger member
is taken for an upscale of the smaller when it is softer by more than half of what an upscale
by their size ratio would cost; then its extra pixels count for nothing.  A genuine larger
original is about as sharp as its downscaled copies, and keeps them.  Each measurement is one
decode, only for the two members a choice turns on, and is cached by content.

The same holds for encoding.  A member that would win by its format or its JPEG quality alone
must prove that encoding is its own: a lossless file, or a JPEG saved at a higher quality than
its rival, may just be the rival decoded and saved again (``features.lineage`` reads the
rival's quantisation, or any JPEG's, in its pixels).  If it is, its encoding counts as one
generation below what it was made from, never above: a re-save is not better than its source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..features.quality import QUALITY_FIELDS, encoding_value, quality_score

__all__ = ["DETAIL_SIDE", "PIXEL_MARGIN", "UPSCALE_EXPONENT", "Contest", "plan_measurements", "plan_lineage",
           "provisional_scores", "encodings", "is_upscale", "demoted", "settle", "Lineage", "age_decides",
           "AGE_MARGIN_NS"]

#: the smaller member of a contest is measured at most at this long side
DETAIL_SIDE = 1024
#: a member with more than this many times the pixels of another must prove them against it
PIXEL_MARGIN = 1.15
#: the larger member is measured where it has at least this many times the smaller one's side
PROOF_MARGIN = 1.2
#: upscaling by u scales the softness headroom (2 - softness) by u ** -UPSCALE_EXPONENT
UPSCALE_EXPONENT = 1.3
#: softness differences below this are measurement noise (re-encodes of one image measure
#: within about +-0.05 of each other)
SOFT_TOLERANCE = 0.1
#: keeper scores closer than this are a tie as far as the lineage check goes: decoding a
#: re-save moves its clipped share by a thousandth or two (0.003-0.006 in score) and its
#: colourfulness by up to half a unit (0.01), while one JPEG quality step is worth 0.04; so a
#: member that would win by less than that noise without its encoding claim must prove it
TIE_MARGIN = 0.03

_SOFT = QUALITY_FIELDS.index("softness")
_PIXELS = QUALITY_FIELDS.index("pixels")
_JPEG_Q = QUALITY_FIELDS.index("jpeg_quality")
_LOSSLESS = QUALITY_FIELDS.index("lossless")


@dataclass(frozen=True, slots=True)
class Lineage:
    """What the lineage check found for a member that claimed a better encoding than ``rival``:
    ``made_from`` is the encoding value its pixels were made from (None: nothing found, the
    claim stands), ``how`` says what was found."""

    rival: int  # index in the contest
    made_from: float | None
    how: str = ""


def demoted(made_from: float, claimed: float) -> float:
    """The encoding value of a re-save made from ``made_from`` that claimed ``claimed``: below
    its source, and re-saves of one source keep their own order (a lossless copy of a q89 JPEG
    holds its pixels exactly, a q95 re-save of it does not)."""
    return made_from - 1.0 + 0.5 * min(max(claimed, 0.0), 100.0) / 101.0


def is_upscale(soft_big: float, soft_small: float, resolution_ratio: float) -> bool:
    """Whether the larger member, measured ``resolution_ratio`` times the smaller one's
    resolution, is softer than the smaller by more than half of what an upscale would cost."""
    expected = (2.0 - soft_small) * (1.0 - max(resolution_ratio, 1.0) ** -UPSCALE_EXPONENT)
    return soft_big - soft_small > max(SOFT_TOLERANCE, expected / 2.0)


@dataclass
class Contest:
    """One group's members: quality rows (softness NaN until measured), long sides, which
    measurements were tried (a file changed since the scan is not asked again), and the
    outcome of every proof so far."""

    rows: list[int]
    quality: np.ndarray  # (k, len(QUALITY_FIELDS)) float64
    long_side: np.ndarray  # (k,) int
    tried: np.ndarray  # (k,) bool
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) the DCT scale each was measured at
    proved: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) pixels each member has proved
    proofs: dict[int, tuple[int, bool]] = field(default_factory=dict)  # member -> (rival, passed)
    pending: tuple[int, int] | None = None  # (member, rival) being measured
    settled: bool = False  # nothing left to measure
    encoding: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) encoding values (a re-save's demoted)
    lineage: dict[int, Lineage] = field(default_factory=dict)  # member -> what its encoding claim met

    def __post_init__(self) -> None:
        k = len(self.rows)
        if len(self.scale) != k:
            self.scale = np.ones(k)
        if len(self.proved) != k:
            self.proved = self.quality[:, _PIXELS].astype(np.float64).copy()
        if len(self.encoding) != k:
            self.encoding = encoding_value(self.quality[:, _JPEG_Q], self.quality[:, _LOSSLESS]).astype(np.float64)


def encodings(c: Contest) -> np.ndarray:
    """Each member's encoding value, a re-save's demoted to below what it was made from."""
    return c.encoding


def provisional_scores(c: Contest) -> np.ndarray:
    """Keeper scores with the pixels proved so far (softness counts only through them)."""
    q = c.quality.copy()
    q[:, _PIXELS] = c.proved
    q[:, _SOFT] = 1.0
    # the encoding as proved: quality_score reads it back from these two columns
    q[:, _LOSSLESS] = 0.0
    q[:, _JPEG_Q] = c.encoding
    return quality_score(**{f: q[:, i] for i, f in enumerate(QUALITY_FIELDS)}, reference_softness=1.0)


def plan_measurements(c: Contest, order_key: Callable[[int], Any]) -> dict[int, int]:
    """Which members to measure next, as ``{index: min_side}``: empty once the choice is settled.

    The would-be keeper, if it beats a member on pixels, is the only member that large, and
    would not win without them, must prove them against the best-ranked such member: both are measured, the larger at a scale
    above the smaller one's size (so an upscale shows).  Same-size members are told apart by
    the other facts (encoding, colour, border).
    """
    k = len(c.rows)
    if k < 2:
        return {}
    s = provisional_scores(c)
    rank = sorted(range(k), key=lambda j: (-round(float(s[j]), 6), order_key(c.rows[j])))
    top = rank[0]
    if top in c.proofs:
        return {}
    smaller = [j for j in rank[1:] if c.proved[j] * PIXEL_MARGIN < c.proved[top]]
    if not smaller:
        return {}
    rival = smaller[0]
    # another member as large corroborates its size (two copies are rarely upscaled alike);
    # and if it would still win with no more pixels than the rival, its pixels decide nothing
    corroborated = any(c.proved[j] * PIXEL_MARGIN >= c.proved[top] for j in range(k) if j != top)
    proved = c.proved[top]
    c.proved[top] = c.proved[rival]
    capped = provisional_scores(c)
    c.proved[top] = proved
    cap_rank = sorted(range(k), key=lambda j: (-round(float(capped[j]), 6), order_key(c.rows[j])))
    if corroborated or cap_rank[0] == top:
        c.proofs[top] = (rival, True)
        return {}
    need: dict[int, int] = {}
    proof = int(min(c.long_side[top], np.ceil(PROOF_MARGIN * c.long_side[rival])))
    for j, side in ((top, proof), (rival, int(min(c.long_side[rival], DETAIL_SIDE)))):
        if np.isnan(c.quality[j, _SOFT]) and not c.tried[j]:
            need[j] = max(1, side)
    if not need:  # both measured (or unmeasurable): judge the proof now
        _judge(c, top, rival)
        return plan_measurements(c, order_key)
    c.pending = (top, rival)
    return need


def _judge(c: Contest, top: int, rival: int) -> None:
    st, sr = c.quality[top, _SOFT], c.quality[rival, _SOFT]
    passed = True
    if not (np.isnan(st) or np.isnan(sr)):
        ratio = (c.long_side[top] / c.scale[top]) / (c.long_side[rival] / c.scale[rival])
        passed = not is_upscale(float(st), float(sr), float(ratio))
    c.proofs[top] = (rival, passed)
    if not passed:  # its extra pixels hold no detail the rival lacks
        c.proved[top] = min(c.proved[top], c.proved[rival])


def _winner(c: Contest, order_key: Callable[[int], Any]) -> int:
    s = provisional_scores(c)
    return min(range(len(c.rows)), key=lambda j: (-round(float(s[j]), 6), order_key(c.rows[j])))


def plan_lineage(c: Contest, order_key: Callable[[int], Any]) -> tuple[int, int] | None:
    """``(member, rival)`` whose lineage must be read next, or None once settled: the would-be
    keeper, if it beats a member on encoding and would not win with an encoding no better than
    the best-ranked such member's, must show it was not made from that member's encoding."""
    if len(c.rows) < 2:
        return None
    top = _winner(c, order_key)
    if top in c.lineage:
        return None
    s = provisional_scores(c)
    enc = c.encoding
    below = sorted((j for j in range(len(c.rows)) if enc[j] < enc[top]),
                   key=lambda j: (-round(float(s[j]), 6), order_key(c.rows[j])))
    if not below:
        return None
    rival = below[0]
    claimed = enc[top]
    enc[top] = enc[rival]
    level = provisional_scores(c)
    decides = _winner(c, order_key) != top or \
        level[top] - max(float(level[j]) for j in range(len(c.rows)) if j != top) < TIE_MARGIN
    enc[top] = claimed
    if not decides:
        c.lineage[top] = Lineage(rival, None)
        return None
    return top, rival


def settle(contests: Sequence[Contest],  # noqa: C901 - rounds over all contests at once (measure, then read lineage)
           measure: Callable[[Iterable[tuple[int, int]]], dict[int, tuple[float, int] | None]],
           order_key: Callable[[int], Any],
           lineage: Callable[[Iterable[tuple[int, int]]], dict[tuple[int, int], tuple[float | None, str]]]
           | None = None) -> int:
    """Measure, in rounds over all groups at once, until every group's choice is settled.

    ``measure`` takes ``(row, min_side)`` pairs and returns each row's ``(softness, scale)``
    (``None`` when the file could not be read or decoded).  ``lineage`` takes ``(row, rival
    row)`` pairs and returns for each the encoding value the row was made from (None: its
    encoding is its own) and a note saying what was found.  Returns how many members were
    measured.
    """
    total = 0
    while True:
        asks: list[tuple[Contest, int, int]] = []
        claims: list[tuple[Contest, int, int]] = []
        for c in contests:
            if c.settled:
                continue
            need = plan_measurements(c, order_key)
            for j, side in need.items():
                asks.append((c, j, side))
            if not need:
                claim = plan_lineage(c, order_key) if lineage is not None else None
                if claim is not None:
                    claims.append((c, *claim))
                c.settled = claim is None
        if not asks and not claims:
            return total
        if asks:
            got = measure((c.rows[j], side) for c, j, side in asks)
            for c, j, _ in asks:
                c.tried[j] = True
                v = got.get(c.rows[j])
                if v is not None:
                    c.quality[j, _SOFT], c.scale[j] = v
            for c in {id(c): c for c, _, _ in asks}.values():
                if c.pending is not None:
                    _judge(c, *c.pending)
                    c.pending = None
            total += len(asks)
        if claims:
            assert lineage is not None
            found = lineage((c.rows[top], c.rows[rival]) for c, top, rival in claims)
            for c, top, rival in claims:
                made_from, how = found.get((c.rows[top], c.rows[rival]), (None, ""))
                c.lineage[top] = Lineage(rival, made_from, how)
                if made_from is not None:  # a re-save: one generation below its source, never above
                    c.encoding[top] = min(c.encoding[top], demoted(made_from, c.encoding[top]))
            total += len(claims)


#: a file younger than its rival by at least this much was saved after it (one save stamps
#: one instant; a millisecond is above the resolution of the filesystems that matter here)
AGE_MARGIN_NS = 1_000_000


def age_decides(c: Contest, mtime_ns: np.ndarray) -> tuple[int, int] | None:
    """``(oldest, top)`` where the would-be keeper ``top`` is younger than the oldest member
    and wins by its encoding or its pixel count alone: a copy saved later at a higher JPEG
    quality, as PNG, or enlarged, is a re-save of what it shows, not a better original (the
    lineage and detail checks prove this where the source's traces survived; an edit in
    between, or the source's own JPEG softness, erases the proof, not the fact)."""
    if len(c.rows) < 2:
        return None
    scores = provisional_scores(c)
    top = int(np.argmax(scores))
    oldest = int(np.argmin(mtime_ns))
    others = np.delete(mtime_ns, oldest)
    if oldest == top or others.min() - mtime_ns[oldest] < AGE_MARGIN_NS:
        return None
    saved_encoding, saved_pixels = c.encoding.copy(), c.proved.copy()
    c.encoding[oldest] = max(c.encoding[oldest], c.encoding[top])
    c.proved[oldest] = max(c.proved[oldest], c.proved[top])
    alt = float(provisional_scores(c)[oldest])
    c.encoding, c.proved = saved_encoding, saved_pixels
    return (oldest, top) if alt >= scores[top] - TIE_MARGIN else None
