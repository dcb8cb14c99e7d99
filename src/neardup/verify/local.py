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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .template import overlap_framed

__all__ = ["LOCAL_VERSION", "LOCAL_SIDE", "LocalFeatures", "LocalParams", "local_features", "match_pair"]

LOCAL_VERSION = "orb500-mirror-thumb256-4"
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

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, points=self.points, desc=self.desc, mpoints=self.mpoints, mdesc=self.mdesc,
                 size=np.array(self.size), thumb=self.thumb)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        z = np.load(io.BytesIO(data))
        w, h = (int(v) for v in z["size"])
        return cls(z["points"], z["desc"], z["mpoints"], z["mdesc"], (w, h), z["thumb"])


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalParams:
    ratio: float = 0.8  # Lowe's ratio test
    min_inliers: int = 15
    reproj: float = 5.0  # RANSAC reprojection error, pixels at LOCAL_SIDE
    aligned_ncc: float = 0.80  # worst tile correlation of the aligned overlap
    detail_ncc: float = 0.85  # median tile correlation of the high-passed views (fine detail)
    min_cover: float = 0.5  # share of the smaller image that the overlap must cover
    max_scale: float = 8.0  # the homography may scale by at most this (area ratio squared)


def local_features(rgb: np.ndarray, *, n_features: int = 500) -> LocalFeatures:
    """ORB keypoints and a grey thumbnail of an upright RGB image (long side <= LOCAL_SIDE)."""
    cv2 = _cv2()
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    orb = cv2.ORB_create(nfeatures=n_features, fastThreshold=10)

    def detect(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kps, desc = orb.detectAndCompute(np.ascontiguousarray(g), None)
        pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        return pts, (desc if desc is not None else np.zeros((0, 32), np.uint8))

    pts, desc = detect(gray)
    mpts, mdesc = detect(gray[:, ::-1])
    s = THUMB_SIDE / max(h, w)
    tw, th = max(8, round(w * s)), max(8, round(h * s))
    thumb = cv2.resize(gray, (tw, th), interpolation=cv2.INTER_AREA)
    return LocalFeatures(pts, desc, mpts, mdesc, (w, h), thumb)


@dataclass(frozen=True, slots=True)
class LocalEvidence:
    matches: int
    inliers: int
    ncc: float  # worst tile correlation of the aligned views (nan when no homography)
    cover: float
    detail: float = float("nan")  # median tile correlation of their fine detail (high-pass)
    framed: bool = False  # the aligned views disagree where the pictures are (verify/template.py)

    def accepted(self, p: LocalParams) -> bool:
        return (self.inliers >= p.min_inliers and self.ncc >= p.aligned_ncc and self.cover >= p.min_cover
                and self.detail >= p.detail_ncc and not self.framed)


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
    Ht = sa @ H @ sb
    # compare in the frame of whichever view holds the content at the lower resolution, the
    # other one low-passed to match: an inset or a zoomed-out tilt is not penalised for blur
    scale = float(np.sqrt(abs(np.linalg.det(Ht[:2, :2]))))
    if scale > 1.0:
        src, dst, M, f = fa.thumb, bthumb, np.linalg.inv(Ht), scale
    else:
        src, dst, M, f = bthumb, fa.thumb, Ht, 1.0 / scale
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

    warped, m, cover = aligned(M)
    if m.sum() < 64:
        return LocalEvidence(len(good), inl, float("nan"), min(cover, 1.0))
    rough = _ncc(d32[m], warped[m])
    if rough < params.aligned_ncc - 0.3 or cover < params.min_cover:
        return LocalEvidence(len(good), inl, rough, min(cover, 1.0))  # far off: no refinement will save it
    try:  # sub-pixel refinement of the keypoint homography on the views themselves
        Mi = np.linalg.inv(M)
        Mi = (Mi / Mi[2, 2]).astype(np.float32)  # maps dst to src, as ECC wants
        _, Mi = cv2.findTransformECC(d32, src32, Mi, cv2.MOTION_HOMOGRAPHY,
                                     (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4), None, 1)
        warped, m, cover = aligned(np.linalg.inv(Mi))
    except (cv2.error, np.linalg.LinAlgError):
        pass  # keep the keypoint homography
    if m.sum() < 64:
        return LocalEvidence(len(good), inl, float("nan"), min(cover, 1.0))
    worst, _ = _tile_ncc(d32, warped, m, flat=4.0)
    # fine detail: the same pixels share their texture and noise, another shot does not
    _, detail = _tile_ncc(_band(cv2, d32), _band(cv2, warped), m, flat=1.0)
    found = LocalEvidence(len(good), inl, worst, min(cover, 1.0), detail)
    if not found.accepted(params):  # the guard is asked only of a match that would stand
        return found
    framed = overlap_framed(cv2.GaussianBlur(d32, (0, 0), 2.0), cv2.GaussianBlur(warped, (0, 0), 2.0), m)
    return LocalEvidence(len(good), inl, worst, min(cover, 1.0), detail, framed)


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
