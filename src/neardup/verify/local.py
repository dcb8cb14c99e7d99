"""Local features with geometric verification: ORB, ratio test, RANSAC homography, and a
photometric check of the aligned images.

A homography with many inliers says two images share a planar view; it does not say one is
an edited copy of the other: another shot of the same scene aligns too.  So the pair must
also agree *after* alignment (refined to sub-pixel by ECC, compared in the frame of the
lower-resolution view, on 256-px grey thumbnails), tile by tile on a 3x3 grid:

* the worst tile's correlation >= ``aligned_ncc``: every part of the overlap shows the same
  thing (another shot has things that moved: Holidays pairs score ~0.2);
* the median tile correlation of the fine detail (the image less its blur) >=
  ``detail_ncc``: the same pixels share their texture, a re-photographed flat object does not
  (UKBench pairs of one object score 0.48-0.82, copies a median of 0.96).

``eval/local_calibration.py`` prints both distributions; docs/benchmarks.md has them.

Per image, the keypoints, descriptors and the thumbnail are computed once (from a decode at
``LOCAL_SIDE``) and cached under ``LOCAL_VERSION``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import UsageError
from .template import overlap_framed

__all__ = ["LOCAL_VERSION", "LOCAL_SIDE", "LocalFeatures", "LocalParams", "LocalEvidence", "Containment", "local_features",
           "match_pair", "match_inset", "containment", "seam", "seam_sides"]

LOCAL_VERSION = "orb500-grid4-mirrorkp-thumb256-6"
LOCAL_SIDE = 512
THUMB_SIDE = 256


def _cv2() -> Any:
    try:
        import cv2  # noqa: PLC0415 - OpenCV is the [cnn] extra, loaded by thorough scans only
    except ImportError:

        raise UsageError("thorough mode needs OpenCV: pip install 'neardup[cnn]'") from None
    cv2.setNumThreads(1)
    return cv2


@dataclass(frozen=True, slots=True)
class LocalFeatures:
    """Keypoints of the upright image and of its mirror image (ORB is not mirror-invariant)."""

    points: np.ndarray  # (n, 2) float32, pixel coordinates at `size`
    desc: np.ndarray  # (n, 32) uint8 ORB descriptors
    mpoints: np.ndarray  # the same for the image flipped left-right
    mdesc: np.ndarray
    size: tuple[int, int]  # (w, h) of the image the points refer to
    thumb: np.ndarray  # (th, tw) uint8 grey, upright, long side THUMB_SIDE
    frame: tuple[int, int] = (0, 0)  # (w, h) of the view before its borders were trimmed (0: not known)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, points=self.points, desc=self.desc, mpoints=self.mpoints, mdesc=self.mdesc,
                 size=np.array(self.size), thumb=self.thumb, frame=np.array(self.frame))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        z = np.load(io.BytesIO(data))
        w, h = (int(v) for v in z["size"])
        fw, fh = (int(v) for v in z["frame"])
        return cls(z["points"], z["desc"], z["mpoints"], z["mdesc"], (w, h), z["thumb"], (fw, fh))

    def content_size(self, native: tuple[int, int]) -> tuple[float, float]:
        """The size, in the file's own pixels, of what these features show: the image of
        ``native`` (width, height) less the borders trimmed from the view."""
        if not self.frame[0] or not self.frame[1]:
            return float(native[0]), float(native[1])
        return native[0] * self.size[0] / self.frame[0], native[1] * self.size[1] / self.frame[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalParams:
    ratio: float = 0.8  # Lowe's ratio test
    min_inliers: int = 15
    reproj: float = 5.0  # RANSAC reprojection error, pixels at LOCAL_SIDE
    aligned_ncc: float = 0.80  # worst tile correlation of the aligned overlap
    detail_ncc: float = 0.85  # median tile correlation of the high-passed views (fine detail)
    min_cover: float = 0.5  # share of the smaller image that the overlap must cover
    # a match where one view holds the other whole is "contains" when the other covers at most
    # this share of its frame (something else is around it) ...
    contains_footprint: float = 0.9
    # the fine-detail bar of a picture aligned by its placement inside a container
    # (:func:`match_inset`): shrinking it and the container's own encoding take its finest detail
    # (CC0 pictures in insets and slides, tests/test_contains.py: 0.47-0.98); other shots of a
    # scene or an object fail the worst tile there already (0.5 at most, against 0.8)
    placed_detail: float = 0.6
    # ... and its outline is a seam (verify.local.seam) that no crop's outline makes: crops
    # reach about 1.5 where a side follows an edge of the photo, bars, frames and rotated
    # canvases 3 and more (eval/contains.py) ...
    contains_seam: float = 2.5
    # ... or a seam a crop rarely makes, around a picture that was shrunk to be placed: it has
    # this many times the pixels its outline covers in the container (a crop has as many)
    shrunk_seam: float = 1.45
    shrunk: float = 1.3
    max_scale: float = 8.0  # the homography may scale by at most this (area ratio squared)


#: keypoints are spread over a GRID x GRID cut of the image, each cell keeping its strongest
#: share first: text, icons and other hard corners in one part of an image (a slide's bullet
#: lines, an app's buttons) would otherwise take the whole budget from a picture shown beside them
GRID = 4


def _spread(kps: list[Any], w: int, h: int, n: int) -> list[Any]:
    """Up to ``n`` of ``kps``: the strongest n / GRID**2 of each grid cell, then the strongest of
    the rest."""
    if len(kps) <= n:
        return kps
    xy = np.array([k.pt for k in kps], np.float64).reshape(-1, 2)
    response = np.array([k.response for k in kps], np.float64)
    cell = (np.minimum(GRID - 1, (xy[:, 1] * GRID / h).astype(np.int64)) * GRID
            + np.minimum(GRID - 1, (xy[:, 0] * GRID / w).astype(np.int64)))
    order = np.argsort(-response, kind="stable")
    cells = cell[order]
    # each keypoint's rank among those of its cell, strongest first
    by_cell = np.argsort(cells, kind="stable")
    starts = np.searchsorted(cells[by_cell], cells[by_cell])
    rank = np.empty(len(order), np.int64)
    rank[by_cell] = np.arange(len(order)) - starts
    first = rank < n // (GRID * GRID)
    chosen = np.concatenate([order[first], order[~first]])[:n]
    return [kps[i] for i in chosen.tolist()]


def local_features(rgb: np.ndarray, *, n_features: int = 500, frame: tuple[int, int] = (0, 0)) -> LocalFeatures:
    """ORB keypoints (spread over the image, :func:`_spread`) and a grey thumbnail of an upright
    RGB image (long side <= LOCAL_SIDE); ``frame``: its (w, h) before borders were trimmed.

    The mirror image's descriptors are computed at the mirrored keypoints (FAST and Harris
    are symmetric, so a detection on the mirror finds the same points): a third of the cost of
    detecting again, and as many matches with a flipped, edited copy (docs/benchmarks.md,
    "Thorough mode's speed")."""
    cv2 = _cv2()
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    orb = cv2.ORB_create(nfeatures=3 * n_features, fastThreshold=10)

    def described(g: np.ndarray, kps: list[Any]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        kept, desc = orb.compute(g, kps)
        pts = np.array([k.pt for k in kept], dtype=np.float32).reshape(-1, 2)
        return pts, (desc if desc is not None else np.zeros((0, 32), np.uint8)), list(kept)

    pts, desc, kps = described(gray, _spread(list(orb.detect(gray, None)), w, h, n_features))
    mirror = [cv2.KeyPoint(w - 1 - k.pt[0], k.pt[1], k.size, (180.0 - k.angle) % 360.0, k.response, k.octave)
              for k in kps]
    mpts, mdesc, _ = described(np.ascontiguousarray(gray[:, ::-1]), mirror)
    s = THUMB_SIDE / max(h, w)
    tw, th = max(8, round(w * s)), max(8, round(h * s))
    thumb = cv2.resize(gray, (tw, th), interpolation=cv2.INTER_AREA)
    return LocalFeatures(pts, desc, mpts, mdesc, (w, h), thumb, frame)


@dataclass(frozen=True, slots=True)
class Containment:
    """Whether one view of an aligned pair shows the other whole, inside a larger frame."""

    inside: int = 0  # +1: b's whole frame lies inside a's; -1: a's inside b's; 0: neither
    footprint: float = float("nan")  # the share of the container's frame the other covers
    seam: float = float("nan")  # how much sharper the container is across that outline than beside it


@dataclass(frozen=True, slots=True)
class LocalEvidence:
    matches: int
    inliers: int
    ncc: float  # worst tile correlation of the aligned views (nan when no homography)
    cover: float
    detail: float = float("nan")  # median tile correlation of their fine detail (high-pass)
    framed: bool = False  # the aligned views disagree where the pictures are (verify/template.py)
    containment: Containment = Containment()
    placed: bool = False  # aligned by the layout's placement of one inside the other (:func:`match_inset`)

    def accepted(self, p: LocalParams) -> bool:
        return ((self.inliers >= p.min_inliers or self.placed) and self.ncc >= p.aligned_ncc
                and self.cover >= p.min_cover and self.detail >= (p.placed_detail if self.placed else p.detail_ncc)
                and not self.framed)

    def contains(self, p: LocalParams, size_a: tuple[float, float], size_b: tuple[float, float]) -> int:
        """+1 when a holds b whole inside a larger frame, -1 when b holds a, 0 otherwise (an
        accepted match only): a picture pasted into a frame, onto a canvas or another photo,
        with bars or corners added, not a crop (whose surround is its own photo going on).
        ``size_a``, ``size_b``: what the views show, in the files' own pixels
        (:meth:`LocalFeatures.content_size`), for how much the held one was shrunk."""
        c = self.containment
        if not self.accepted(p) or not c.inside or not c.footprint <= p.contains_footprint:
            return 0
        if c.seam >= p.contains_seam or (c.seam >= p.shrunk_seam and self.shrunk(size_a, size_b) >= p.shrunk):
            return c.inside
        return 0

    def shrunk(self, size_a: tuple[float, float], size_b: tuple[float, float]) -> float:
        """How many times the pixels its outline covers in the container the held view has (nan
        when neither holds the other): a picture shrunk to be placed has more, a crop as many."""
        c = self.containment
        if not c.inside:
            return float("nan")
        (w_out, h_out), (w_in, h_in) = (size_a, size_b) if c.inside > 0 else (size_b, size_a)
        return w_in * h_in / max(1.0, c.footprint * w_out * h_out)


def match_pair(fa: LocalFeatures, fb: LocalFeatures, params: LocalParams, *, mirror: bool = True) -> LocalEvidence:
    """Match b (upright, then mirrored) onto a, fit a homography, compare the aligned views."""
    best = _match(fa, fb.points, fb.desc, fb.thumb, fb.size, params)
    if best.accepted(params) or not mirror:
        return best
    mirrored = _match(fa, fb.mpoints, fb.mdesc, np.ascontiguousarray(fb.thumb[:, ::-1]), fb.size, params)
    return mirrored if (mirrored.accepted(params), mirrored.inliers) > (False, best.inliers) else best


def _match(fa: LocalFeatures, bpoints: np.ndarray, bdesc: np.ndarray, bthumb: np.ndarray,
           bsize: tuple[int, int], params: LocalParams) -> LocalEvidence:
    cv2 = _cv2()
    if len(fa.desc) < 4 or len(bdesc) < 4:
        return LocalEvidence(0, 0, float("nan"), 0.0)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = matcher.knnMatch(bdesc, fa.desc, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < params.ratio * m[1].distance]
    if len(good) < max(4, params.min_inliers):
        return LocalEvidence(len(good), 0, float("nan"), 0.0)
    src = bpoints[[m.queryIdx for m in good]]
    dst = fa.points[[m.trainIdx for m in good]]
    H, mask = cv2.findHomography(src, dst, cv2.RANSAC, params.reproj, maxIters=1000, confidence=0.995)
    if H is None:
        return LocalEvidence(len(good), 0, float("nan"), 0.0)
    inl = int(mask.sum())
    det = float(np.linalg.det(H[:2, :2]))
    if not (1.0 / params.max_scale**2 <= abs(det) <= params.max_scale**2):
        return LocalEvidence(len(good), inl, float("nan"), 0.0)
    # the homography in thumbnail coordinates: thumb_a <- a <- b <- thumb_b
    sa = _scale(fa.thumb.shape[1] / fa.size[0], fa.thumb.shape[0] / fa.size[1])
    sb = np.linalg.inv(_scale(bthumb.shape[1] / bsize[0], bthumb.shape[0] / bsize[1]))
    found, Ht = _aligned(fa.thumb, bthumb, sa @ H @ sb, params, matches=len(good), inliers=inl)
    return replace(found, containment=containment(Ht, fa.thumb, bthumb)) if found.accepted(params) else found


def _aligned(athumb: np.ndarray, bthumb: np.ndarray, Ht: np.ndarray, params: LocalParams, *, matches: int = 0,
             inliers: int = 0, placed: bool = False) -> tuple[LocalEvidence, np.ndarray]:
    """Compare two thumbnails aligned by ``Ht`` (b's thumbnail pixels to a's), refined by ECC:
    worst tile correlation, fine detail, the frame guard; and the refined ``Ht``."""
    cv2 = _cv2()
    # compare in the frame of whichever view holds the content at the lower resolution, the
    # other one low-passed to match: an inset or a zoomed-out tilt is not penalised for blur
    scale = float(np.sqrt(abs(np.linalg.det(Ht[:2, :2]))))
    if scale > 1.0:
        src, dst, M, f = athumb, bthumb, np.linalg.inv(Ht), scale
    else:
        src, dst, M, f = bthumb, athumb, Ht, 1.0 / scale
    src32 = src.astype(np.float32)
    if f > 1.05:
        sigma = 0.5 * float(np.sqrt(f * f - 1.0))
        src32 = cv2.GaussianBlur(src32, (0, 0), sigma)
    d32 = dst.astype(np.float32)
    th, tw = dst.shape

    def aligned(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        warped = cv2.warpPerspective(src32, M, (tw, th), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        ones = cv2.warpPerspective(np.ones(src.shape, np.float32), M, (tw, th), flags=cv2.INTER_LINEAR)
        # two pixels in from every edge, so interpolated borders (and black corners) do not count
        m = cv2.erode((ones > 0.999).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        area_src = src.size * abs(float(np.linalg.det(M[:2, :2])))
        return warped, m, float(m.sum()) / max(1.0, min(float(dst.size), area_src))

    def b_to_a(M: np.ndarray) -> np.ndarray:
        return np.linalg.inv(M) if scale > 1.0 else M

    warped, m, cover = aligned(M)
    if m.sum() < 64:
        return LocalEvidence(matches, inliers, float("nan"), min(cover, 1.0), placed=placed), Ht
    rough = _ncc(d32[m], warped[m])
    if rough < params.aligned_ncc - 0.3 or cover < params.min_cover:  # far off: no refinement will save it
        return LocalEvidence(matches, inliers, rough, min(cover, 1.0), placed=placed), Ht
    if not placed:  # a RANSAC homography that already makes the views agree needs no refinement
        first = _judged(cv2, d32, warped, m, cover, params, matches, inliers, placed)
        if first is not None and first.accepted(params):
            return first, b_to_a(M)
    try:  # sub-pixel refinement of the homography on the views themselves
        M = _refined(cv2, d32, src32, M, placed=placed)
        warped, m, cover = aligned(M)
    except (cv2.error, np.linalg.LinAlgError):
        pass  # keep the first homography
    found = _judged(cv2, d32, warped, m, cover, params, matches, inliers, placed)
    if found is None:
        return LocalEvidence(matches, inliers, float("nan"), min(cover, 1.0), placed=placed), b_to_a(M)
    return found, b_to_a(M)


def _refined(cv2: Any, d32: np.ndarray, src32: np.ndarray, M: np.ndarray, *, placed: bool) -> np.ndarray:
    """``M`` (src pixels to dst's) refined by ECC on the views themselves.  From a layout's
    placement (off by up to a cell), coarse to fine: most steps on both views halved
    (``cv2.pyrDown``: a quarter of the pixels), then a few at full size.  Where the halved views
    do not converge, the full ones take all the steps (as before the halving); where the full
    ones then fail, the halved result stands.  Raises ``cv2.error`` only when nothing converged."""
    if not placed or ECC_PLACED_COARSE is None:
        return _ecc(cv2, d32, src32, M, ECC_PLACED_FINE if placed else ECC_KEYPOINTS)
    half = np.diag([0.5, 0.5, 1.0])  # pyrDown's pixel i is the full view's pixel 2i (its filter is centred there)
    try:
        coarse = _ecc(cv2, cv2.pyrDown(d32), cv2.pyrDown(src32), half @ M @ np.linalg.inv(half), ECC_PLACED_COARSE)
    except cv2.error:
        return _ecc(cv2, d32, src32, M, ECC_PLACED_COARSE)
    start = np.linalg.inv(half) @ coarse @ half
    try:
        return _ecc(cv2, d32, src32, start, ECC_PLACED_FINE)
    except cv2.error:
        return start


def _ecc(cv2: Any, d32: np.ndarray, src32: np.ndarray, M: np.ndarray, criteria: tuple[int, float]) -> np.ndarray:
    """One ECC refinement of ``M`` (src pixels to dst's) under (steps, eps)."""
    Mi = np.linalg.inv(M)
    Mi = (Mi / Mi[2, 2]).astype(np.float32)  # maps dst to src, as ECC wants
    _, Mi = cv2.findTransformECC(d32, src32, Mi, cv2.MOTION_HOMOGRAPHY,
                                 (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, *criteria), None, 1)
    return np.linalg.inv(Mi)


def _judged(cv2: Any, d32: np.ndarray, warped: np.ndarray, m: np.ndarray, cover: float, params: LocalParams,
            matches: int, inliers: int, placed: bool) -> LocalEvidence | None:
    """The evidence of two aligned views: worst tile correlation, fine detail, and the frame
    guard where the match would stand (None when the overlap is too small to judge)."""
    if m.sum() < 64:
        return None
    worst, _ = _tile_ncc(d32, warped, m, flat=4.0)
    # fine detail: the same pixels share their texture and noise, another shot does not
    _, detail = _tile_ncc(_band(cv2, d32), _band(cv2, warped), m, flat=1.0)
    found = LocalEvidence(matches, inliers, worst, min(cover, 1.0), detail, placed=placed)
    if not found.accepted(params):  # the guard is asked only of a match that would stand
        return found
    framed = overlap_framed(cv2.GaussianBlur(d32, (0, 0), 2.0), cv2.GaussianBlur(warped, (0, 0), 2.0), m)
    return replace(found, framed=framed)


#: ECC's refinement stops after this many steps or when a step moves the homography less than
#: this.  From a RANSAC homography, 15 and 1e-3 take about two thirds of the time of 30 and 1e-4
#: and leave the aligned views as alike (benchmarks/thorough_parts.py replays them).  From a
#: layout's placement (match_inset), which is off by a cell: 30 steps to 1e-4 on the views
#: halved (with 1e-3 fewer insets stand than tests/test_contains.py asks for), then 5 at full
#: size; benchmarks/inset_ecc.py replays the placements against 30 / 1e-4 at full size
ECC_KEYPOINTS = (15, 1e-3)
ECC_PLACED_COARSE: tuple[int, float] | None = (30, 1e-4)  # None: no halved pass (the fine one does it all)
ECC_PLACED_FINE = (5, 1e-3)

#: scales tried around the layout's placement of a picture inside another (:func:`match_inset`):
#: the layout places it to a cell of 32, about 3% of the frame
INSET_SCALES = (0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12)


def match_inset(outer: LocalFeatures, inner: LocalFeatures, box: tuple[float, float, float, float],
                params: LocalParams) -> LocalEvidence:
    """The local check of a picture shown whole inside another, aligned without keypoints: a
    picture shrunk to a third of a frame keeps few of a 512-pixel image's corners (a slide's
    text, an app's icons take them).  ``box`` (left, top, right, bottom, shares of ``outer``'s
    frame) is where the layouts placed ``inner`` (verify/inset.py); its thumbnail, resized to a
    few scales about the box, is matched at every offset near it, and the best placement is
    refined and compared as :func:`match_pair` compares views (ECC, worst tile, fine detail,
    frame guard).  Containment is reported from ``outer``'s side (``inside = +1``)."""
    cv2 = _cv2()
    big = outer.thumb.astype(np.float32)
    h, w = big.shape
    ih, iw = inner.thumb.shape
    left, top, right, bottom = box
    cx, cy, bw, bh = (left + right) / 2 * w, (top + bottom) / 2 * h, (right - left) * w, (bottom - top) * h
    margin = int(0.08 * max(w, h)) + 2
    best: tuple[float, int, int, int, int] | None = None
    for s in INSET_SCALES:
        tw, th = round(bw * s), round(bh * s)
        if tw < 16 or th < 16 or tw > w or th > h:
            continue
        tmpl = cv2.resize(inner.thumb, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)
        x0, y0 = max(0, int(cx - tw / 2) - margin), max(0, int(cy - th / 2) - margin)
        x1, y1 = min(w, int(cx + tw / 2) + margin), min(h, int(cy + th / 2) + margin)
        if x1 - x0 < tw or y1 - y0 < th or tmpl.std() < 1.0:
            continue
        res = cv2.matchTemplate(big[y0:y1, x0:x1], tmpl, cv2.TM_CCOEFF_NORMED)
        _, score, _, (mx, my) = cv2.minMaxLoc(res)
        if best is None or score > best[0]:
            best = (float(score), x0 + mx, y0 + my, tw, th)
    if best is None or best[0] < params.aligned_ncc - 0.3:
        return LocalEvidence(0, 0, float("nan") if best is None else best[0], 0.0, placed=True)
    _, x, y, tw, th = best
    # inner's thumbnail pixels -> outer's (pixel centres aligned)
    Ht = np.array([[tw / iw, 0.0, x + 0.5 * tw / iw - 0.5], [0.0, th / ih, y + 0.5 * th / ih - 0.5], [0.0, 0.0, 1.0]])
    found, Ht = _aligned(outer.thumb, inner.thumb, Ht, params, placed=True)
    if not found.accepted(params):
        return found
    held = containment(Ht, outer.thumb, inner.thumb)
    return replace(found, containment=held if held.inside == 1 else Containment(1, tw * th / float(w * h)))


#: a view's corners may fall this far (a share of the container's longer side) outside the
#: container's frame and still count as inside: the homography's error at the corners
CORNER_SLACK = 0.03


def containment(Ht: np.ndarray, thumb_a: np.ndarray, thumb_b: np.ndarray) -> Containment:
    """Which view, if either, holds the other whole (``Ht`` maps b's thumbnail pixels to a's),
    how much of its frame that covers, and the seam along the outline (:func:`seam`): a picture
    pasted into a frame, a canvas or onto another photo leaves one, a crop does not (its
    surround is the same photo going on)."""
    cv2 = _cv2()
    for sign, M, inner, outer in ((1, Ht, thumb_b, thumb_a), (-1, None, thumb_a, thumb_b)):
        if M is None:
            try:
                M = np.linalg.inv(Ht)
            except np.linalg.LinAlgError:
                break
        (h_in, w_in), (h_out, w_out) = inner.shape, outer.shape
        corners = np.array([[[-0.5, -0.5], [w_in - 0.5, -0.5], [w_in - 0.5, h_in - 0.5], [-0.5, h_in - 0.5]]], np.float64)
        outline = cv2.perspectiveTransform(corners, np.asarray(M, np.float64))[0]
        slack = CORNER_SLACK * max(w_out, h_out)
        if (outline[:, 0].min() < -0.5 - slack or outline[:, 0].max() > w_out - 0.5 + slack
                or outline[:, 1].min() < -0.5 - slack or outline[:, 1].max() > h_out - 0.5 + slack):
            continue
        x, y = outline[:, 0], outline[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        return Containment(sign, min(1.0, area / float(w_out * h_out)), seam(outer, outline))
    return Containment()


#: pixels (of the grey thumbnail) between the samples taken across and beside an outline
SEAM_STEP = 1.5


def seam(thumb: np.ndarray, outline: np.ndarray) -> float:
    """The median of :func:`seam_sides` over the sides that say something; nan when fewer than
    two do."""
    sides = [r for r in seam_sides(thumb, outline) if not np.isnan(r)]
    return float(np.median(sides)) if len(sides) >= 2 else float("nan")


def seam_sides(thumb: np.ndarray, outline: np.ndarray) -> list[float]:
    """How much the grey ``thumb`` changes across a closed ``outline`` (4, 2) (x, y), against
    how much it changes beside it.  Per side of the outline: the mean absolute step between
    points SEAM_STEP outside and SEAM_STEP inside it, over the mean step between each of those
    and a point 2 * SEAM_STEP further out or in; the median over the sides.  A pasted
    picture's edge is a step that neither the picture nor what it was pasted on has beside it
    (2 and more); a crop's outline runs through one photo, which changes no faster there than
    beside it (about 1), unless a side happens to follow an edge of the photo (the median
    leaves one such side out).  Sides on the container's own edge say nothing and are left
    out; nan when fewer than two sides remain."""
    img = np.asarray(thumb, np.float32)
    h, w = img.shape
    centre = outline.mean(axis=0)
    ratios = []
    for p0, p1 in zip(outline, np.roll(outline, -1, axis=0)):
        edge = p1 - p0
        length = float(np.hypot(*edge))
        if length < 8:
            ratios.append(float("nan"))
            continue
        normal = np.array([edge[1], -edge[0]]) / length
        if np.dot(normal, (p0 + p1) / 2 - centre) < 0:
            normal = -normal
        pts = p0 + np.linspace(0.05, 0.95, max(8, int(length / 2)))[:, None] * edge
        far_out, far_in = pts + 3 * SEAM_STEP * normal, pts - 3 * SEAM_STEP * normal
        ok = np.all((far_out >= 0) & (far_out <= [w - 1, h - 1]) & (far_in >= 0) & (far_in <= [w - 1, h - 1]), axis=1)
        if ok.sum() < 8:
            ratios.append(float("nan"))
            continue
        pts = pts[ok]
        vo2, vo, vi, vi2 = (_bilinear_at(img, pts + k * SEAM_STEP * normal) for k in (3, 1, -1, -3))
        beside = 0.5 * (np.abs(vo - vo2).mean() + np.abs(vi - vi2).mean())
        ratios.append(float(np.abs(vo - vi).mean() / (beside + 1.0)))
    return ratios


def _bilinear_at(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``img`` at (x, y) points inside it, bilinearly."""
    x, y = pts[:, 0], pts[:, 1]
    x0 = np.clip(np.floor(x).astype(np.int64), 0, img.shape[1] - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, img.shape[0] - 2)
    fx, fy = x - x0, y - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _band(cv2, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Fine detail: the image less its blur."""
    return x - cv2.GaussianBlur(x, (0, 0), 2.0)


def _scale(sx: float, sy: float) -> np.ndarray:
    """Pixel coordinates -> coordinates in an image resized by (sx, sy), pixel centres aligned."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    return float((x * y).sum() / (np.sqrt((x * x).sum() * (y * y).sum()) + 1e-6))


def _tile_ncc(a: np.ndarray, b: np.ndarray, m: np.ndarray, *, flat: float, grid: int = 3) -> tuple[float, float]:
    """The worst and the median correlation over a grid of tiles of the overlap: a copy agrees
    everywhere, another shot of the scene does not (things moved, parallax, other light), even
    where its global correlation is high."""
    whole = _ncc(a[m], b[m])
    tiles = []
    ys, xs = np.nonzero(m)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    worst = whole
    for i in range(grid):
        for j in range(grid):
            ty = slice(y0 + (y1 - y0) * i // grid, y0 + (y1 - y0) * (i + 1) // grid)
            tx = slice(x0 + (x1 - x0) * j // grid, x0 + (x1 - x0) * (j + 1) // grid)
            tm = m[ty, tx]
            if tm.sum() < 0.5 * tm.size or tm.sum() < 32:
                continue
            ta = a[ty, tx][tm]
            if ta.std() < flat:  # a flat tile (sky, wall) says nothing either way
                continue
            tiles.append(_ncc(ta, b[ty, tx][tm]))
    if not tiles:
        return whole, whole
    return min(worst, *tiles), float(np.median(tiles))
