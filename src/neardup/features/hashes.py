"""Perceptual hashes: small pure functions of a grey working image.

Every hash here is dihedral-aware: ``*_variants`` return the hash of each of the 8 rotations
and flips of the image without touching the pixels again, because those transforms map to
permutations (wavelet grid) or sign flips and transposes (DCT coefficients).  Bits are packed
big-endian into ``uint64`` words so the Hamming distance is a popcount of XORs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = [
    "to_gray",
    "trim_borders",
    "whash64",
    "whash64_variants",
    "dct_coefficients",
    "dct_hash_variants",
    "pack_bits",
    "hamming",
    "N_VARIANTS",
]

N_VARIANTS = 8  # identity, rot90, rot180, rot270, flipLR, flipLR+rot90, ... (dihedral group D4)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as uint8, exactly as Pillow's ``convert("L")`` computes it."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def trim_borders(gray: np.ndarray, *, tol: float = 12.0, max_frac: float = 0.9) -> tuple[int, int, int, int]:
    """Bounds ``(top, bottom, left, right)`` of the image inside uniform borders.

    A row or column belongs to the border when 98% of its pixels are within ``tol`` of the
    colour of the outermost line; at most ``max_frac`` of each dimension goes per side.  An
    image that would keep fewer than 8 rows or columns (all border: near-blank) is not trimmed.
    """
    h, w = gray.shape

    def run(lines: np.ndarray, limit: int) -> int:
        ref = float(np.median(lines[0]))
        if (np.abs(lines[0] - ref) <= tol).mean() < 0.98:
            return 0  # the common case: no border, decided by one line
        close = np.abs(lines[:limit].astype(np.float32) - ref) <= tol
        ok = close.mean(axis=1) >= 0.98
        bad = np.flatnonzero(~ok)
        return int(bad[0]) if bad.size else limit

    mh, mw = max(0, int(h * max_frac)), max(0, int(w * max_frac))
    top = run(gray, mh)
    bottom = h - run(gray[::-1], mh)
    left = run(gray.T, mw)
    right = w - run(gray.T[::-1], mw)
    if bottom - top < 8 or right - left < 8:
        return 0, h, 0, w
    return top, bottom, left, right


def _resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Lanczos resize to size x size; uint8 input stays 8-bit, as Pillow's "L" mode does."""
    if gray.dtype == np.uint8:
        im = Image.fromarray(gray)
    else:
        im = Image.fromarray(gray.astype(np.float32))
    return np.asarray(im.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float64)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean array (..., nbits) into big-endian uint64 words (..., nbits // 64)."""
    b = np.packbits(bits.astype(np.uint8), axis=-1)
    return b.view(">u8").astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distance between packed hashes, broadcasting over leading axes."""
    x = np.bitwise_xor(a, b)
    return np.bitwise_count(x).sum(axis=-1).astype(np.int32)


def _dihedral(m: np.ndarray) -> list[np.ndarray]:
    out = []
    for flip in (False, True):
        base = m[:, ::-1] if flip else m
        for k in range(4):
            out.append(np.rot90(base, k))
    return out


def _whash_bits(gray: np.ndarray) -> np.ndarray:
    scale = max(8, 2 ** int(np.log2(min(gray.shape))))
    img = _resize(gray, scale) / 255.0
    k = scale // 8
    ll = img.reshape(8, k, 8, k).mean(axis=(1, 3)) - img.mean()
    return ll > np.median(ll)


def whash64(gray: np.ndarray) -> np.ndarray:
    """64-bit Haar wavelet hash, bit-identical to ``imagehash.whash`` on the same image.

    The image is resized to the largest power of two that fits (at least 8); the Haar
    low-pass at level log2(scale/8) is the 8x8 grid of block means, and removing the coarsest
    LL band is subtracting the global mean, which leaves the median threshold unchanged.
    """
    return pack_bits(_whash_bits(gray).reshape(-1))


def whash64_variants(gray: np.ndarray) -> np.ndarray:
    """The 8 dihedral variants of :func:`whash64`, shape (8, 1) uint64."""
    return np.stack([pack_bits(v.reshape(-1)) for v in _dihedral(_whash_bits(gray))])


@lru_cache(maxsize=8)
def _dct_matrix(n: int, k: int) -> np.ndarray:
    x = np.arange(n)
    u = np.arange(k)[:, None]
    m = np.cos(np.pi * (2 * x + 1) * u / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def dct_coefficients(gray: np.ndarray, *, size: int = 64, k: int = 16) -> np.ndarray:
    """The k x k lowest-frequency 2-D DCT-II coefficients of the image resized to size x size."""
    img = _resize(gray, size)
    d = _dct_matrix(size, k)
    return d @ img @ d.T


def dct_hash_variants(coef: np.ndarray, *, k: int = 16, skip_dc: bool = True) -> np.ndarray:
    """Dihedral variants of a DCT median hash from the top-left ``k x k`` coefficients.

    Flipping left-right negates odd horizontal frequencies, flipping top-bottom odd vertical
    ones, and a transpose swaps the axes; rotations are compositions of these.  Returns
    (8, k*k // 64) uint64, in the same variant order as :func:`whash64_variants`.
    """
    c = coef[:k, :k]
    sv = np.where(np.arange(k) % 2 == 1, -1.0, 1.0)  # sign pattern for odd frequencies
    variants = []
    for flip in (False, True):
        base = c * sv[None, :] if flip else c  # flip left-right
        for r in range(4):
            # rot90 (counter-clockwise) of the image = transpose then flip top-bottom
            m = base
            for _ in range(r):
                m = (m * sv[None, :]).T  # flip LR then transpose == rot90 ccw
            variants.append(m.reshape(-1))
    flat = np.stack(variants)  # (8, k*k), one median per variant, all at once
    ref = flat[:, 1:] if skip_dc else flat
    bits = flat > np.median(ref, axis=1, keepdims=True)
    if skip_dc:
        bits[:, 0] = False
    return pack_bits(bits)
