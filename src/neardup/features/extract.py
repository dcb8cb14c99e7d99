"""Turn decoded images into their features, a batch at a time: one decode, no pixels kept.

The per-image work is the decode (``decode.py``); everything here runs on stacks of images of
one size as a handful of matrix products, so the cost per image is a few microseconds of
NumPy, not a few hundred of Python.  :class:`FeatureBatch` holds the result as columns, the
shape in which workers hand features to the driver and the driver writes them to the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

from ..config import MAX_PIXELS
from .content import slot_codes
from .decode import Decoded, decode
from .hashes import (
    REF_SIDE,
    area_matrix,
    dct_matrix,
    outer_lines,
    pack_bits,
    to_gray,
    trim_borders,
    trim_sides,
    variant_hashes,
)
from .loops import Engine, compiled_loops
from .orient import canonical_variants
from .quality import QUALITY_FIELDS, QualityFacts
from .windows import WINDOW_CODES, search_codes

__all__ = [
    "ImageFeatures", "FeatureBatch", "extract", "features_batch", "canonical_rgb", "FEATURE_VERSION", "SIG_SIDE",
    "CENTER_FRACTION", "digest_bytes", "new_digest", "DIGEST", "LEGACY_DIGEST", "is_low_info", "pixel_planes",
]

#: Bump when any extractor changes its output: it is part of every cache key.
FEATURE_VERSION = "nd-features-13"
#: the search codes stored with an image: its crop windows and tilted frames (features/windows.py),
#: then its slot code (features/content.py; 0 when it is not framed)
SEARCH_CODES = WINDOW_CODES + 1
#: Side of the luminance layout signature used to verify crops.
SIG_SIDE = 32
#: The centre window hashed as well, so that moderate crops find their original.
CENTER_FRACTION = 0.88
#: Images whose trimmed content has less AC energy than this are "low information".
LOW_INFO_ENERGY = 6.0
#: ... and so are images whose content, once borders are trimmed, is smaller than this many
#: pixels on a side, counted on a 256-pixel frame (or the file's own pixels if smaller): a
#: 16x16 DCT hash of fewer pixels is mostly interpolation, so unrelated small objects on plain
#: backgrounds would look alike.
MIN_CONTENT_SIDE = 32
#: The frame that content sides are counted on.
CONTENT_FRAME = 256


def is_low_info(energy: np.ndarray | float, content_side: np.ndarray | int) -> np.ndarray | bool:
    """Whether an image has too little content for its hashes to be trusted at the usual bound."""
    return (np.asarray(energy) < LOW_INFO_ENERGY) | (np.asarray(content_side) < MIN_CONTENT_SIDE)


#: The content digest: SHA-256 cut to 128 bits (collision-resistant to 2**64; hardware-accelerated
#: on current x86 and ARM CPUs, 2.4x the speed of BLAKE2b here).  Results and manifests name it,
#: so files written with the digest of older versions are still checked with theirs.
DIGEST = "sha256-128"
LEGACY_DIGEST = "blake2b-128"  # neardup before features v10


def new_digest(algo: str = DIGEST) -> Any:
    """A streaming hasher for ``algo`` (``update``, ``hexdigest``, ``digest``)."""
    if algo == DIGEST:
        return _Truncated(hashlib.sha256())
    if algo == LEGACY_DIGEST:
        return hashlib.blake2b(digest_size=16)
    raise ValueError(f"unknown content digest {algo!r}")


class _Truncated:
    def __init__(self, h: Any) -> None:
        self.h = h

    def update(self, data: bytes) -> None:
        self.h.update(data)

    def digest(self) -> bytes:
        return bytes(self.h.digest()[:16])

    def hexdigest(self) -> str:
        return self.digest().hex()


def digest_bytes(data: bytes, algo: str = DIGEST) -> bytes:
    """The file's 128-bit content digest: identical bytes are an exact duplicate."""
    if algo == DIGEST:
        return hashlib.sha256(data).digest()[:16]
    h = new_digest(algo)
    h.update(data)
    return bytes(h.digest())


@dataclass(frozen=True, slots=True)
class ImageFeatures:
    """Everything the later stages need about one image, and nothing that shows it."""

    digest: bytes
    width: int
    height: int
    format: str
    p64: np.ndarray  # (8,) uint64: 8x8 DCT hash of the trimmed image, each dihedral variant
    c64: np.ndarray  # (8,) uint64: the same for the centre window
    d256: np.ndarray  # (8, 4) uint64: 16x16 DCT hash, each dihedral variant
    whash: int  # 64-bit wavelet (Haar LL band) hash, upright
    canon: int  # the variant chosen as canonical orientation
    alt_mask: int  # bit v set: variant v must also be indexed (orientation is ambiguous)
    sig: np.ndarray  # (SIG_SIDE, SIG_SIDE) uint8 luminance layout of the trimmed image
    windows: np.ndarray  # (SEARCH_CODES,) uint64: crop-window and tilted-frame codes, then the slot code
    colour: np.ndarray  # (48,) uint8 colour signature
    energy: float  # AC energy of the trimmed image: low means little to match on
    content_side: int  # shorter side of the trimmed content, on a CONTENT_FRAME frame
    quality: QualityFacts

    @property
    def low_info(self) -> bool:
        return bool(is_low_info(self.energy, self.content_side))


@dataclass(frozen=True, slots=True)
class FeatureBatch:
    """The features of ``n`` images as columns (row ``i`` is ``digest[i]``)."""

    digest: np.ndarray  # (n, 16) uint8
    width: np.ndarray  # (n,) int64, upright full-resolution size
    height: np.ndarray
    format: tuple[str, ...]
    p64: np.ndarray  # (n, 8) uint64
    c64: np.ndarray  # (n, 8) uint64
    d256: np.ndarray  # (n, 8, 4) uint64
    whash: np.ndarray  # (n,) uint64
    canon: np.ndarray  # (n,) uint8
    alt_mask: np.ndarray  # (n,) uint8
    sig: np.ndarray  # (n, SIG_SIDE, SIG_SIDE) uint8
    windows: np.ndarray  # (n, SEARCH_CODES) uint64
    colour: np.ndarray  # (n, 48) uint8
    energy: np.ndarray  # (n,) float64
    content_side: np.ndarray  # (n,) int64
    quality: np.ndarray  # (n, len(QUALITY_FIELDS)) float64

    def __len__(self) -> int:
        return int(self.digest.shape[0])

    def row(self, i: int) -> ImageFeatures:
        return ImageFeatures(
            digest=self.digest[i].tobytes(), width=int(self.width[i]), height=int(self.height[i]),
            format=self.format[i], p64=self.p64[i], c64=self.c64[i], d256=self.d256[i], whash=int(self.whash[i]),
            canon=int(self.canon[i]), alt_mask=int(self.alt_mask[i]), sig=self.sig[i], windows=self.windows[i],
            colour=self.colour[i],
            energy=float(self.energy[i]), content_side=int(self.content_side[i]),
            quality=QualityFacts.from_row(self.quality[i]),
        )

    def take(self, idx: Sequence[int] | np.ndarray) -> FeatureBatch:
        """The rows ``idx``, in that order."""
        ix = np.asarray(idx, dtype=np.int64)
        cols = {f.name: getattr(self, f.name) for f in fields(self)}
        out = {k: (tuple(v[i] for i in ix.tolist()) if k == "format" else v[ix]) for k, v in cols.items()}
        return FeatureBatch(**out)  # type: ignore[arg-type]

    @classmethod
    def concat(cls, batches: Sequence[FeatureBatch]) -> FeatureBatch:
        if not batches:
            return cls.empty()
        out: dict[str, object] = {}
        for f in fields(cls):
            vals = [getattr(b, f.name) for b in batches]
            out[f.name] = tuple(x for v in vals for x in v) if f.name == "format" else np.concatenate(vals)
        return cls(**out)  # type: ignore[arg-type]

    @classmethod
    def empty(cls) -> FeatureBatch:
        return cls(
            digest=np.zeros((0, 16), np.uint8), width=np.zeros(0, np.int64), height=np.zeros(0, np.int64), format=(),
            p64=np.zeros((0, 8), np.uint64), c64=np.zeros((0, 8), np.uint64), d256=np.zeros((0, 8, 4), np.uint64),
            whash=np.zeros(0, np.uint64), canon=np.zeros(0, np.uint8), alt_mask=np.zeros(0, np.uint8),
            sig=np.zeros((0, SIG_SIDE, SIG_SIDE), np.uint8), windows=np.zeros((0, SEARCH_CODES), np.uint64),
            colour=np.zeros((0, 48), np.uint8),
            energy=np.zeros(0, np.float64), content_side=np.zeros(0, np.int64),
            quality=np.zeros((0, len(QUALITY_FIELDS)), np.float64),
        )


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601
#: grid of the colour statistics: colourfulness on its cells, the 4x4 signature from their means
COLOUR_GRID = 16
#: the centre window, on the layout grid: cells [2, 30) of 32 (87.5% of each side)
_WIN = (2, SIG_SIDE - 2)


@lru_cache(maxsize=4096)
def _restricted(n: int, lo: int, hi: int, k: int) -> np.ndarray:
    """(k, n) area averages of pixels [lo, hi) into k cells, zero elsewhere: trimming a border
    is a choice of matrix, so trimmed and untrimmed images share one stack."""
    m = np.zeros((k, n), dtype=np.float32)
    m[:, lo:hi] = area_matrix(hi - lo, k)
    m.setflags(write=False)
    return m


def _grids(luma: np.ndarray, chroma: np.ndarray, bounds: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The layout grid (N, 32, 32) of each image's luma and the colour grid (N, 2, 16, 16) of its
    chroma (half resolution), inside each image's trimmed ``bounds``: two batched products each."""
    n, h, w = luma.shape
    _, _, ch, cw = chroma.shape
    left = np.stack([_restricted(h, t, b, SIG_SIDE) for t, b, _, _ in bounds])
    right = np.stack([_restricted(w, lo, hi, SIG_SIDE) for _, _, lo, hi in bounds])
    layout = np.matmul(left, np.matmul(luma, right.transpose(0, 2, 1)))
    cl = np.stack([_restricted(ch, t // 2, max(t // 2 + 1, -(-b // 2)), COLOUR_GRID) for t, b, _, _ in bounds])
    cr = np.stack([_restricted(cw, lo // 2, max(lo // 2 + 1, -(-hi // 2)), COLOUR_GRID) for _, _, lo, hi in bounds])
    colour = np.matmul(cl[:, None], np.matmul(chroma, cr.transpose(0, 2, 1)[:, None]))
    return layout, colour


def _dct_grid(x: np.ndarray, k: int) -> np.ndarray:
    """The k x k lowest DCT coefficients of square grids (N, m, m), on the REF_SIDE scale."""
    m = x.shape[-1]
    d = dct_matrix(m, k)
    return np.matmul(np.matmul(d, x), d.T) * np.float32(REF_SIDE / m)


def _hash_features(layout: np.ndarray, colour: np.ndarray) -> dict[str, np.ndarray]:
    """Every feature from the grids of :func:`_grids`, all images at once.

    The hashes are DCT blocks of the layout grid: its 32 area averages a side keep every
    frequency a 16x16 block holds (up to 7.5 cycles a frame) without aliasing.
    """
    n = len(layout)
    coef = _dct_grid(layout, 16)
    low = np.ascontiguousarray(coef[:, :8, :8])
    canon, alt = canonical_variants(low)
    c64 = coef.astype(np.float64)
    energy = np.sqrt(np.maximum((c64**2).sum(axis=(1, 2)) - c64[:, 0, 0] ** 2, 0.0)) / REF_SIDE
    a, b = _WIN
    window = _dct_grid(np.ascontiguousarray(layout[:, a:b, a:b]), 8)
    a8 = area_matrix(SIG_SIDE, 8)
    ll = (a8 @ layout @ a8.T).reshape(n, 64)  # the 8x8 Haar LL band
    a4 = area_matrix(SIG_SIDE, 4)
    luma_cells = (a4 @ layout @ a4.T).astype(np.float64)
    c4 = area_matrix(COLOUR_GRID, 4)
    chroma_cells = (c4 @ colour @ c4.T).astype(np.float64)
    sig = np.stack([luma_cells, chroma_cells[:, 0] / 2 + 128, chroma_cells[:, 1] / 2 + 128], axis=-1)
    rg, yb = colour[:, 0].reshape(n, -1).astype(np.float64), colour[:, 1].reshape(n, -1).astype(np.float64)
    lay = layout.reshape(n, -1)
    return {
        "d256": variant_hashes(coef),
        "p64": variant_hashes(low)[:, :, 0],
        "c64": variant_hashes(window)[:, :, 0],
        "canon": canon,
        "alt_mask": alt,
        "energy": energy,
        "sig": np.clip(np.rint(layout), 0, 255).astype(np.uint8),
        "whash": pack_bits(ll > np.sort(ll, axis=1)[:, 31:33].mean(axis=1, keepdims=True))[:, 0],
        "colour": np.clip(np.round(sig), 0, 255).astype(np.uint8).reshape(n, -1),
        # Hasler and Suesstrunk's colourfulness, on the colour grid
        "colourfulness": np.hypot(rg.std(axis=1), yb.std(axis=1)) + 0.3 * np.hypot(rg.mean(axis=1), yb.mean(axis=1)),
        # share of the frame clipped to black or white, on the layout grid
        "clipped": ((lay <= 2.5) | (lay >= 252.5)).mean(axis=1),
    }


#: images are padded to canvases whose sides are multiples of this, so a chunk makes few stacks
CANVAS_STEP = 32


def pixel_planes(rgb: np.ndarray, *, engine: Engine = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The luma (m, H, W) and half-resolution opponent chroma (m, 2, H/2, W/2) of uint8 images
    (m, H, W, 3), in float32.

    Luma is ``R * 0.299 + G * 0.587 + B * 0.114``, each product and sum rounded to float32 in
    that order, so every pixel is rounded alike wherever it falls in the stack (a dot product's
    SIMD path, fused or not, may depend on that, and a last-bit difference may round a layout
    cell the other way, making an image's features depend on its batch).  Chroma is R - G and
    (R + G) / 2 - B at every other pixel of every other row, exact in float32.  ``engine``: the
    compiled loop (pixel_loop.c) reads the interleaved pixels once; NumPy casts each channel
    into its own plane first; both give the same bits.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"pixel_planes takes uint8 images (m, H, W, 3), not {rgb.dtype} {rgb.shape}")
    m, h, w, _ = rgb.shape
    luma = np.empty((m, h, w), np.float32)
    chroma = np.empty((m, 2, (h + 1) // 2, (w + 1) // 2), np.float32)
    loops = compiled_loops(engine)
    if loops is not None:
        loops.planes(m, h, w, np.ascontiguousarray(rgb), _LUMA, luma, chroma)
        return luma, chroma
    channel = np.empty_like(luma)
    np.multiply(rgb[..., 0], _LUMA[0], out=luma, dtype=np.float32)
    for c in (1, 2):
        np.multiply(rgb[..., c], _LUMA[c], out=channel, dtype=np.float32)
        luma += channel
    half = rgb[:, ::2, ::2]
    np.subtract(half[..., 0], half[..., 1], out=chroma[:, 0], dtype=np.float32)
    np.add(half[..., 0], half[..., 1], out=chroma[:, 1], dtype=np.float32)
    chroma[:, 1] *= np.float32(0.5)
    chroma[:, 1] -= half[..., 2]
    return luma, chroma


def _canvas(members: list[tuple[int, np.ndarray, bool]], shape: tuple[int, int],
            kept: np.ndarray, side: np.ndarray, layout: np.ndarray, colour: np.ndarray) -> None:
    """The pixel work for images padded onto one canvas size: luma and half-resolution chroma,
    borders, then each image's layout and colour grids inside its own bounds.  Images arrive
    landscape (portrait ones transposed) and their grids go back upright."""
    H, W = shape
    m = len(members)
    rgb = np.zeros((m, H, W, 3), np.uint8)
    hs = np.empty(m, np.int64)
    ws = np.empty(m, np.int64)
    for j, (_, a, _) in enumerate(members):
        rgb[j, : a.shape[0], : a.shape[1]] = a
        hs[j], ws[j] = a.shape[:2]
    luma, chroma = pixel_planes(rgb)
    ids = np.array([i for i, _, _ in members], dtype=np.int64)
    uniform, refs = outer_lines(luma, hs, ws)
    bounds = [(0, int(h), 0, int(w)) for h, w in zip(hs.tolist(), ws.tolist())]
    for j in np.flatnonzero(uniform.any(axis=1)).tolist():
        bounds[j] = trim_sides(luma[j, : hs[j], : ws[j]], uniform[j], refs[j])
    for j, (t, b, lo, hi) in enumerate(bounds):
        kept[ids[j]] = (b - t) * (hi - lo) / float(hs[j] * ws[j])
        side[ids[j]] = min(b - t, hi - lo)
    lay, col = _grids(luma, chroma, bounds)
    flip = np.array([tr for _, _, tr in members], dtype=bool)
    if flip.any():  # portrait images were transposed: their grids go back upright
        lay[flip] = lay[flip].transpose(0, 2, 1)
        col[flip] = col[flip].transpose(0, 1, 3, 2)
    layout[ids] = lay
    colour[ids] = col


def features_batch(decoded: Sequence[Decoded], digests: Sequence[bytes]) -> FeatureBatch:
    """Compute every feature of many decoded images (pure, deterministic, order-preserving).

    Each image is padded onto a canvas (sides rounded up to CANVAS_STEP, portrait images
    transposed), so a chunk makes a few stacks whatever its images' sizes; every statistic is
    taken inside the image's own pixels, and borders are trimmed by the choice of its averaging
    matrices.  The pixel work is a few batched matrix products per stack, reducing every image
    to a 32x32 luma grid and a 16x16 chroma grid; every hash comes from those, for all at once.
    """
    n = len(decoded)
    if n == 0:
        return FeatureBatch.empty()
    classes: dict[tuple[int, int], list[tuple[int, np.ndarray, bool]]] = {}
    for i, d in enumerate(decoded):
        a = d.small
        tr = a.shape[0] > a.shape[1]
        if tr:
            a = a.transpose(1, 0, 2)
        key = (-(-a.shape[0] // CANVAS_STEP) * CANVAS_STEP, -(-a.shape[1] // CANVAS_STEP) * CANVAS_STEP)
        classes.setdefault(key, []).append((i, a, tr))
    kept = np.ones(n, np.float64)  # share of the frame left after trimming
    side = np.zeros(n, np.int64)  # shorter trimmed side, in feature-image pixels
    layout = np.empty((n, SIG_SIDE, SIG_SIDE), np.float32)
    colour = np.empty((n, 2, COLOUR_GRID, COLOUR_GRID), np.float32)
    for shape, members in classes.items():
        _canvas(members, shape, kept, side, layout, colour)
    cols = _hash_features(layout, colour)
    width = np.array([d.width for d in decoded], dtype=np.int64)
    height = np.array([d.height for d in decoded], dtype=np.int64)
    small_long = np.array([max(d.small.shape[:2]) for d in decoded], dtype=np.float64)
    frame = np.minimum(CONTENT_FRAME, np.maximum(width, height)).astype(np.float64)
    content_side = np.rint(side * frame / small_long).astype(np.int64)
    quality = np.stack([
        (width * height).astype(np.float64),
        np.array([d.jpeg_quality for d in decoded], np.float64),
        np.array([d.lossless for d in decoded], np.float64),
        np.full(n, np.nan),  # softness: measured on demand, at native size, by the keeper check
        np.round(cols["colourfulness"].astype(np.float64), 3),
        np.round(1.0 - kept, 4),
        np.round(cols["clipped"].astype(np.float64), 4),
    ], axis=1)
    return FeatureBatch(
        digest=np.frombuffer(b"".join(digests), np.uint8).reshape(n, -1).copy(), width=width, height=height,
        format=tuple(d.format for d in decoded), p64=cols["p64"], c64=cols["c64"], d256=cols["d256"],
        whash=cols["whash"], canon=cols["canon"], alt_mask=cols["alt_mask"], sig=cols["sig"],
        windows=np.hstack([search_codes(cols["sig"], width / np.maximum(height, 1)), slot_codes(cols["sig"])[:, None]]),
        colour=cols["colour"],
        energy=cols["energy"], content_side=content_side, quality=quality,
    )


def features_from_decoded(d: Decoded, digest: bytes) -> ImageFeatures:
    """Every feature of one decoded image (a batch of one)."""
    return features_batch([d], [digest]).row(0)


def canonical_rgb(d: Decoded, canon: int) -> np.ndarray:
    """The view (or feature image), borders trimmed, in canonical orientation (what embeddings
    see, so that rotated and flipped copies embed alike)."""
    top, bottom, left, right = trim_borders(to_gray(d.rgb))
    rgb = d.rgb[top:bottom, left:right]
    rgb = rgb[:, ::-1] if canon >= 4 else rgb
    return np.ascontiguousarray(np.rot90(rgb, canon % 4))


def extract(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageFeatures:
    """Decode ``data`` once and compute all features.

    Raises
    ------
    neardup.errors.DecodeError
        When the bytes are not a decodable, supported image within ``max_pixels``.
    """
    return features_from_decoded(decode(data, max_pixels=max_pixels), digest_bytes(data))
