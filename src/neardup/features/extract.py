"""Turn the bytes of one file into its :class:`ImageFeatures`: one decode, no pixels kept."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .colour import colour_signature
from .decode import Decoded, decode
from .hashes import dct_coefficients, dct_hash_variants, to_gray, trim_borders, whash64
from .orient import canonical_variant
from .quality import QualityFacts, quality_facts

__all__ = [
    "ImageFeatures", "extract", "canonical_rgb", "FEATURE_VERSION", "SIG_SIDE", "CENTER_FRACTION", "digest_bytes", "is_low_info",
]

#: Bump when any extractor changes its output: it is part of every cache key.
FEATURE_VERSION = "nd-features-9"
#: Side of the luminance layout signature used to verify crops.
SIG_SIDE = 32
#: The centre window hashed as well, so that moderate crops find their original.
CENTER_FRACTION = 0.88
#: Images whose trimmed content has less AC energy than this are "low information".
LOW_INFO_ENERGY = 6.0
#: ... and so are images whose content, once borders are trimmed, is smaller than this many
#: working pixels on a side: a 16x16 DCT hash of fewer pixels is mostly interpolation, so
#: unrelated small objects on plain backgrounds would look alike.
MIN_CONTENT_SIDE = 32


def is_low_info(energy: np.ndarray | float, content_side: np.ndarray | int) -> np.ndarray | bool:
    """Whether an image has too little content for its hashes to be trusted at the usual bound."""
    return (np.asarray(energy) < LOW_INFO_ENERGY) | (np.asarray(content_side) < MIN_CONTENT_SIDE)


def digest_bytes(data: bytes) -> bytes:
    """128-bit BLAKE2b of the file: identical bytes are an exact duplicate."""
    return hashlib.blake2b(data, digest_size=16).digest()


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
    whash: int  # imagehash-compatible 64-bit wavelet hash (upright)
    canon: int  # the variant chosen as canonical orientation
    alt_mask: int  # bit v set: variant v must also be indexed (orientation is ambiguous)
    sig: np.ndarray  # (SIG_SIDE, SIG_SIDE) uint8 luminance layout of the trimmed image
    colour: np.ndarray  # (48,) uint8 colour signature
    energy: float  # AC energy of the trimmed image: low means little to match on
    content_side: int  # shorter side of the trimmed content, in working-image pixels
    quality: QualityFacts

    @property
    def low_info(self) -> bool:
        return bool(is_low_info(self.energy, self.content_side))


def _window(gray: np.ndarray, frac: float) -> np.ndarray:
    h, w = gray.shape
    dh, dw = int(round(h * (1 - frac) / 2)), int(round(w * (1 - frac) / 2))
    return np.ascontiguousarray(gray[dh : h - dh, dw : w - dw])


def canonical_rgb(d: Decoded, canon: int) -> np.ndarray:
    """The working image, borders trimmed, in canonical orientation (what embeddings see,
    so that rotated and flipped copies embed alike)."""
    top, bottom, left, right = trim_borders(to_gray(d.rgb))
    rgb = d.rgb[top:bottom, left:right]
    rgb = rgb[:, ::-1] if canon >= 4 else rgb
    return np.ascontiguousarray(np.rot90(rgb, canon % 4))


def features_from_decoded(d: Decoded, digest: bytes) -> ImageFeatures:
    """Compute every feature from a decoded working image (pure, deterministic)."""
    gray = to_gray(d.rgb)
    top, bottom, left, right = trim_borders(gray)
    g = np.ascontiguousarray(gray[top:bottom, left:right])
    rgb = d.rgb[top:bottom, left:right]
    coef64 = dct_coefficients(g, size=64, k=16)
    d256 = dct_hash_variants(coef64, k=16)
    coef32 = dct_coefficients(g, size=32, k=8)
    p64 = dct_hash_variants(coef32, k=8)[:, 0]
    c64 = dct_hash_variants(dct_coefficients(_window(g, CENTER_FRACTION), size=32, k=8), k=8)[:, 0]
    canon, alt = canonical_variant(coef32)
    ac = coef64.copy()
    ac[0, 0] = 0.0
    energy = float(np.sqrt((ac**2).sum()) / 64.0)
    sig = np.asarray(Image.fromarray(g).resize((SIG_SIDE, SIG_SIDE), Image.Resampling.BOX), dtype=np.uint8)
    trimmed = 1.0 - (g.shape[0] * g.shape[1]) / float(gray.shape[0] * gray.shape[1])
    return ImageFeatures(
        digest=digest,
        width=d.width,
        height=d.height,
        format=d.format,
        p64=p64.astype(np.uint64),
        c64=c64.astype(np.uint64),
        d256=d256.astype(np.uint64),
        whash=int(whash64(g)[0]),
        canon=canon,
        alt_mask=alt,
        sig=sig,
        colour=colour_signature(rgb),
        energy=energy,
        content_side=int(min(g.shape)),
        quality=quality_facts(d, g, rgb, border_fraction=trimmed),
    )


def extract(data: bytes, *, max_pixels: int = 200_000_000) -> ImageFeatures:
    """Decode ``data`` once and compute all features.

    Raises
    ------
    neardup.errors.DecodeError
        When the bytes are not a decodable, supported image within ``max_pixels``.
    """
    digest = digest_bytes(data)
    return features_from_decoded(decode(data, max_pixels=max_pixels), digest)
