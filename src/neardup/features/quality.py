"""Facts about an image's quality, and the score that picks the copy to keep.

Every fact is measured on the already-decoded pixels or read from the header, so the score
costs no extra decode.  The score prefers, in order of weight: more real detail (pixels, less
what upscaling or blur left smooth), higher JPEG quality or a lossless format, colour, no added
border, no clipping.  Sharpening and noise earn nothing: extra gradient is not extra detail.

Known blind spot: a JPEG decoded at reduced size (long side >= 1024 px) has its upscaling
undone by the DCT scaling, so an upscaled JPEG copy of a smaller original can win on pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["QualityFacts", "quality_score", "encoding_value", "QUALITY_FIELDS", "UNKNOWN_LOSSY_QUALITY"]


#: Softness of a typical sharp photo; detail falls off linearly from there to 2 (all smooth).
SHARP_SOFTNESS = 1.15


#: what a lossy format whose quality cannot be read (WebP, HEIC, AVIF) counts as: a typical
#: web setting
UNKNOWN_LOSSY_QUALITY = 75.0


#: colourfulness (Hasler and Suesstrunk) above which an image counts as colourful: below it
#: chroma differences are noise, so colour tests and "kept for its colour" say nothing
COLOURFUL = 12.0


def encoding_value(jpeg_quality: ArrayLike, lossless: ArrayLike) -> np.ndarray:
    """How faithful an encoding is, on the JPEG quality scale: 100 for a lossless format, the
    estimated quality for a JPEG, :data:`UNKNOWN_LOSSY_QUALITY` for other lossy formats."""
    jq = np.asarray(jpeg_quality, dtype=np.float64)
    return np.where(np.asarray(lossless, dtype=bool), 100.0, np.where(jq > 0, jq, UNKNOWN_LOSSY_QUALITY))


def quality_score(pixels: ArrayLike, jpeg_quality: ArrayLike, lossless: ArrayLike, softness: ArrayLike,
                  colourfulness: ArrayLike, border: ArrayLike, clipped: ArrayLike, *,
                  reference_softness: ArrayLike = SHARP_SOFTNESS) -> np.ndarray:
    """The keeper score from the facts: scalars or columns; higher is better.

    Comparable only between copies of one image, whose typical softness should be passed as
    ``reference_softness`` (a scalar, or one per copy): detail counts as lost only where a copy
    is smoother than that.
    Lossy formats other than JPEG carry no readable quality, so they count as a typical web
    setting (75).
    """
    enc = encoding_value(jpeg_quality, lossless)
    s = np.log2(np.maximum(np.asarray(pixels, dtype=np.float64), 1.0))
    s = s + 0.04 * enc  # q95 vs q30: +2.6, about 6x the pixels
    # effective linear resolution shrinks as softness rises past a sharp photo's
    ref = np.minimum(np.asarray(reference_softness, dtype=np.float64), 1.9)
    detail = np.clip((2.0 - np.asarray(softness, dtype=np.float64)) / (2.0 - ref), 0.05, 1.0)
    s = s + 2.0 * np.log2(detail)
    # in colour or not, not how much: a saturation boost is an edit, not quality
    s = s + 0.8 * np.minimum(np.asarray(colourfulness, dtype=np.float64), COLOURFUL) / COLOURFUL
    s = s - 4.0 * np.asarray(border, dtype=np.float64) - 3.0 * np.asarray(clipped, dtype=np.float64)
    return s


@dataclass(frozen=True, slots=True)
class QualityFacts:
    pixels: int  # full-resolution pixel count
    jpeg_quality: int  # estimated IJG quality, 0 when not JPEG
    lossless: bool
    softness: float  # 1 (sharp) .. 2 (smooth): see decode._softness
    colourfulness: float
    border: float  # share of the frame that was uniform border
    clipped: float  # share of pixels clipped to black or white

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: np.ndarray) -> QualityFacts:
        v = [float(x) for x in row]
        return cls(int(v[0]), int(v[1]), bool(v[2]), v[3], v[4], v[5], v[6])

    @property
    def score(self) -> float:
        """A single number, higher is better; comparable only between copies of one image."""
        return float(quality_score(**self.to_dict()))


QUALITY_FIELDS = tuple(f.name for f in fields(QualityFacts))
