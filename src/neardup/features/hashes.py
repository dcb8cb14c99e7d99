"""Perceptual hashes: small pure functions of grey images, for one image or a stack of them.

Every hash here is computed straight from the pixels by matrix products, with no resize in
between: the low-frequency DCT block of an ``h x w`` image is ``D_h @ g @ D_w.T`` (orthonormal
DCT-II rows), which is the exact projection on the cosines a resize-then-DCT hash
approximates, and costs a few hundred thousand multiply-adds.  Stacks of images of one size are
done in one product.  Coefficients are scaled to what a 64x64 image of the same content gives,
so thresholds on them do not depend on the decoded size.

Hashes are dihedral-aware: the 8 rotations and flips of an image map to sign flips and
transposes of its DCT coefficients (and to permutations of block grids), so every variant
comes without touching the pixels again.  Bits are packed big-endian into ``uint64`` words
so the Hamming distance is a popcount of XORs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "to_gray",
    "trim_borders",
    "outer_lines",
    "trim_sides",
    "dct_matrix",
    "area_matrix",
    "dct_block",
    "dct_coefficients",
    "variant_hashes",
    "dct_hash_variants",
    "oriented_hash",
    "block_means",
    "whash64",
    "pack_bits",
    "hamming",
    "N_VARIANTS",
    "REF_SIDE",
]

N_VARIANTS = 8  # identity, rot90, rot180, rot270, flipLR, flipLR+rot90, ... (dihedral group D4)
#: Coefficients are scaled to a REF_SIDE x REF_SIDE image of the same content.
REF_SIDE = 64


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as uint8, exactly as Pillow's ``convert("L")`` computes it; any leading axes."""
    r = rgb[..., 0].astype(np.uint32)
    g = rgb[..., 1].astype(np.uint32)
    b = rgb[..., 2].astype(np.uint32)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def trim_borders(gray: np.ndarray, *, tol: float = 12.0, max_frac: float = 0.9) -> tuple[int, int, int, int]:
    """Bounds ``(top, bottom, left, right)`` of the image inside uniform borders.

    A row or column belongs to the border when 98% of its pixels are within ``tol`` of the
    colour of the outermost line; at most ``max_frac`` of each dimension goes per side.  An
    image that would keep fewer than 8 rows or columns (all border: near-blank) is not trimmed.
    """
    h, w = gray.shape
    uniform, refs = outer_lines(gray[None], np.array([h]), np.array([w]), tol=tol)
    return trim_sides(gray, uniform[0], refs[0], tol=tol, max_frac=max_frac)


def outer_lines(gray: np.ndarray, hs: np.ndarray, ws: np.ndarray, *, tol: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """For a stack (N, H, W) of images each in the top-left ``hs[i] x ws[i]`` corner: whether each
    outer line (top, bottom, left, right) is uniform (98% within ``tol`` of its median), and the
    medians, (N, 4) each.  The first test of :func:`trim_borders`, for a whole stack at once."""
    n, H, W = gray.shape
    ar = np.arange(n)
    gx = gray.astype(np.float32, copy=False)
    rows = np.stack([gx[:, 0, :], gx[ar, hs - 1, :]], axis=1)  # (N, 2, W)
    cols = np.stack([gx[:, :, 0], gx[ar, :, ws - 1]], axis=1)  # (N, 2, H)
    out_u, out_m = [], []
    for lines, length, size in ((rows, ws, W), (cols, hs, H)):
        valid = np.arange(size)[None, None, :] < length[:, None, None]
        s = np.sort(np.where(valid, lines, np.inf), axis=-1)
        lo = np.take_along_axis(s, ((length - 1) // 2)[:, None, None].repeat(2, 1), axis=-1)[..., 0]
        hi = np.take_along_axis(s, (length // 2)[:, None, None].repeat(2, 1), axis=-1)[..., 0]
        med = (lo.astype(np.float64) + hi) / 2.0
        near = (np.abs(s - med[..., None]) <= tol).sum(axis=-1)  # inf entries are never near
        out_u.append(near >= 0.98 * length[:, None])
        out_m.append(med)
    return np.concatenate(out_u, axis=1), np.concatenate(out_m, axis=1)


def trim_sides(gray: np.ndarray, uniform: np.ndarray, refs: np.ndarray, *, tol: float = 12.0,
               max_frac: float = 0.9) -> tuple[int, int, int, int]:
    """The rest of :func:`trim_borders` for one image, given its :func:`outer_lines` row."""
    h, w = gray.shape
    if not uniform.any():
        return 0, h, 0, w

    def run(lines: np.ndarray, limit: int, ref: float) -> int:
        close = np.abs(lines[:limit].astype(np.float32) - ref) <= tol
        ok = close.mean(axis=1) >= 0.98
        bad = np.flatnonzero(~ok)
        return int(bad[0]) if bad.size else limit

    mh, mw = max(0, int(h * max_frac)), max(0, int(w * max_frac))
    top = run(gray, mh, float(refs[0])) if uniform[0] else 0
    bottom = h - (run(gray[::-1], mh, float(refs[1])) if uniform[1] else 0)
    left = run(gray.T, mw, float(refs[2])) if uniform[2] else 0
    right = w - (run(gray.T[::-1], mw, float(refs[3])) if uniform[3] else 0)
    if bottom - top < 8 or right - left < 8:
        return 0, h, 0, w
    return top, bottom, left, right


@lru_cache(maxsize=256)
def dct_matrix(n: int, k: int) -> np.ndarray:
    """The first ``k`` rows (frequencies) of the orthonormal DCT-II of length ``n``, float32."""
    x = np.arange(n)
    u = np.arange(k)[:, None]
    m = np.cos(np.pi * (2 * x + 1) * u / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    if k > n:  # a tiny image has no such frequencies: they stay zero
        m[n:] = 0.0
    m.setflags(write=False)
    return m.astype(np.float32)


@lru_cache(maxsize=256)
def area_matrix(n: int, k: int) -> np.ndarray:
    """(k, n) weights averaging ``n`` pixels into ``k`` cells by area (exact box resampling)."""
    edges = np.arange(k + 1) * (n / k)
    lo, hi = edges[:-1, None], edges[1:, None]
    x = np.arange(n)[None, :]
    w = np.clip(np.minimum(hi, x + 1) - np.maximum(lo, x), 0.0, None)
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32)


def _sandwich(left: np.ndarray, g: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ g @ right.T`` for a stack g (N, h, w), as two large products."""
    n, h, w = g.shape
    t = (g.reshape(n * h, w) @ right.T).reshape(n, h, -1)  # (N, h, kr)
    return np.matmul(left, t)  # (N, kl, kr)


def dct_block(g: np.ndarray, k: int) -> np.ndarray:
    """The ``k x k`` lowest DCT coefficients of a stack of grey images (N, h, w), float32,
    scaled to a REF_SIDE-square image of the same content."""
    n, h, w = g.shape
    c = _sandwich(dct_matrix(h, k), g.astype(np.float32, copy=False), dct_matrix(w, k))
    return c * np.float32(REF_SIDE / np.sqrt(h * w))


def dct_coefficients(gray: np.ndarray, *, k: int = 16) -> np.ndarray:
    """The k x k lowest-frequency DCT coefficients of one grey image (see :func:`dct_block`)."""
    return dct_block(gray[None], k)[0]


def block_means(x: np.ndarray, k: int) -> np.ndarray:
    """Means of a k x k grid of cells (exact areas) of a stack (N, h, w[, c]) -> (N, k, k[, c])."""
    n, h, w = x.shape[:3]
    ah, aw = area_matrix(h, k), area_matrix(w, k)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 3:
        return _sandwich(ah, x, aw)
    c = x.shape[3]
    t = np.matmul(aw, x.transpose(0, 3, 2, 1).reshape(n * c, w, h)).reshape(n, c, k, h)  # (N, c, k_w, h)
    return np.matmul(t, ah.T).transpose(0, 3, 2, 1)  # (N, k_h, k_w, c)


def _variant_index(k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each dihedral variant v, the flat source index and sign of each coefficient, so that
    ``variant_v.flat = coef.flat[index[v]] * sign[v]``.  Variant ``v = 4 * flip + r``: flip
    left-right (negates odd horizontal frequencies) first, then rotate 90 degrees
    counter-clockwise ``r`` times (each: flip left-right, then transpose)."""
    idx = np.arange(k * k, dtype=np.int64).reshape(k, k)
    sgn = np.ones((k, k), dtype=np.float32)
    odd = np.where(np.arange(k) % 2 == 1, -1.0, 1.0).astype(np.float32)
    out_i, out_s = [], []
    for flip in (False, True):
        bi, bs = idx, sgn * odd[None, :] if flip else sgn
        for r in range(4):
            mi, ms = bi, bs
            for _ in range(r):
                mi, ms = mi.T, (ms * odd[None, :]).T
            out_i.append(mi.reshape(-1))
            out_s.append(ms.reshape(-1))
    return np.stack(out_i), np.stack(out_s)


def _pattern_reps(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Variants whose coefficients are the same multiset (a transpose only permutes) share a
    median: the variants to take medians of, and for each variant which of them it uses."""
    index, sign = _variant_index(k)
    keys: dict[frozenset[tuple[int, float]], int] = {}
    reps: list[int] = []
    use = np.zeros(len(index), dtype=np.int64)
    for v in range(len(index)):
        key = frozenset(zip(index[v].tolist(), sign[v].tolist()))
        if key not in keys:
            keys[key] = len(reps)
            reps.append(v)
        use[v] = keys[key]
    return np.asarray(reps), use


_VARIANTS = {k: (*_variant_index(k), *_pattern_reps(k)) for k in (8, 16)}


@lru_cache(maxsize=8)
def _source_signs(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each variant's signs in the block's own coefficient order, (8, k*k), and whether the
    variant transposes the block, (8,): a variant's coefficients are a transpose (or not) of the
    block times these signs, so its median needs no gather, and its bits are the block's bits,
    transposed or not."""
    index, sign = _VARIANTS[k][:2] if k in _VARIANTS else _variant_index(k)
    ident = np.arange(k * k)
    transposed = ident.reshape(k, k).T.ravel()
    source = np.empty_like(sign)
    turned = np.zeros(len(index), dtype=bool)
    for v in range(len(index)):
        source[v, index[v]] = sign[v]
        turned[v] = bool(np.array_equal(index[v], transposed))
        if not turned[v] and not np.array_equal(index[v], ident):  # pragma: no cover - the dihedral group
            raise AssertionError(f"variant {v} of a {k}x{k} block is neither the block nor its transpose")
    source.setflags(write=False)
    turned.setflags(write=False)
    return source, turned


def _median_bits(flat: np.ndarray, skip_dc: bool) -> np.ndarray:
    """``flat > median(flat)`` along the last axis (the DC term, first, left out of both)."""
    ref = flat[..., 1:] if skip_dc else flat
    m = ref.shape[-1]
    if m % 2:  # the exact median: one selection
        med = np.partition(ref, m // 2, axis=-1)[..., m // 2]
    else:
        med = np.median(ref, axis=-1)
    bits = flat > med[..., None]
    if skip_dc:
        bits[..., 0] = False
    return bits


def _transposed(bits: np.ndarray, k: int) -> np.ndarray:
    """Bit blocks (..., k*k), each transposed as a k x k block."""
    return bits.reshape(*bits.shape[:-1], k, k).swapaxes(-1, -2).reshape(bits.shape)


def variant_hashes(coef: np.ndarray, *, skip_dc: bool = True) -> np.ndarray:
    """Median hashes of all 8 dihedral variants of DCT blocks (N, k, k) -> (N, 8, k*k // 64) uint64.

    Each variant's bits are its coefficients above their median (the DC term left out of
    both), in the variant order of :func:`_variant_index`.  Variants that only transpose each
    other share their coefficients' multiset, so one median (and one set of bits, transposed)
    serves both.
    """
    n, k, _ = coef.shape
    reps, use = _VARIANTS[k][2:] if k in _VARIANTS else _pattern_reps(k)
    source, turned = _source_signs(k)
    bits = _median_bits(coef.reshape(n, 1, k * k) * source[reps], skip_dc)[:, use]  # (N, 8, k*k)
    bits[:, turned] = _transposed(bits[:, turned], k)
    return pack_bits(bits)


def oriented_hash(coef: np.ndarray, variant: np.ndarray, *, skip_dc: bool = True) -> np.ndarray:
    """The median hash of each DCT block (N, k, k) in one dihedral ``variant`` (N,) each:
    ``variant_hashes(coef)[i, variant[i]]``, without the other seven."""
    n, k, _ = coef.shape
    source, turned = _source_signs(k)
    v = np.asarray(variant, dtype=np.intp)
    bits = _median_bits(coef.reshape(n, k * k) * source[v], skip_dc)
    turn = turned[v]
    bits[turn] = _transposed(bits[turn], k)
    return pack_bits(bits[:, None])[:, 0]


def dct_hash_variants(coef: np.ndarray, *, skip_dc: bool = True) -> np.ndarray:
    """The 8 variants of one image's DCT median hash: (8, k*k // 64) uint64."""
    return variant_hashes(coef[None], skip_dc=skip_dc)[0]


def whash64(gray: np.ndarray) -> np.ndarray:
    """64-bit wavelet hash of a stack (N, h, w) -> (N,) uint64: the Haar LL band at 8x8 (the grid
    of block means) above its median, as ``imagehash.whash`` has it after its resize."""
    ll = block_means(gray, 8).reshape(len(gray), 64)
    return pack_bits(ll > np.median(ll, axis=1, keepdims=True))[:, 0]


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean array (..., nbits) into big-endian uint64 words (..., nbits // 64)."""
    b = np.packbits(bits.astype(np.uint8), axis=-1)
    return np.ascontiguousarray(b).view(">u8").astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distance between packed hashes, broadcasting over leading axes."""
    x = np.bitwise_xor(a, b)
    return np.bitwise_count(x).sum(axis=-1).astype(np.int32)
