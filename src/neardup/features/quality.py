"""Facts about an image's quality, and the score that picks the copy to keep.

Every fact is measured on the already-decoded working image or read from the header, so the
score costs no extra decode.  The score prefers, in order of weight: more real detail (pixels
not explained by upscaling), higher JPEG quality or a lossless format, sharpness, colour, no
added border.  ``reason`` names the facts that decided.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .colour import colourfulness
from .decode import Decoded

__all__ = ["QualityFacts", "quality_facts"]


@dataclass(frozen=True, slots=True)
class QualityFacts:
    pixels: int  # full-resolution pixel count
    jpeg_quality: int  # estimated IJG quality, 0 when not JPEG
    lossless: bool
    sharpness: float  # mean gradient magnitude at a normalised scale
    colourfulness: float
    border: float  # share of the frame that was uniform border
    clipped: float  # share of pixels clipped to black or white

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)

    @property
    def score(self) -> float:
        """A single number, higher is better; comparable only between copies of one image."""
        # lossy formats other than JPEG carry no readable quality: assume a typical web setting
        enc = 100.0 if self.lossless else float(self.jpeg_quality or 75)
        s = 1.0 * math.log2(max(self.pixels, 1))
        s += 0.04 * enc  # q95 vs q30: +2.6, about 6x the pixels
        s += 1.5 * math.log2(1.0 + self.sharpness)
        s += 0.8 * min(self.colourfulness, 40.0) / 40.0
        s -= 4.0 * self.border
        s -= 3.0 * self.clipped
        return s


def quality_facts(d: Decoded, gray: np.ndarray, rgb: np.ndarray, *, border_fraction: float) -> QualityFacts:
    g = gray.astype(np.float32)
    if g.shape[0] > 2 and g.shape[1] > 2:
        gx = np.abs(np.diff(g, axis=1)).mean()
        gy = np.abs(np.diff(g, axis=0)).mean()
        # normalise to a fixed reference width so the working scale does not matter
        sharp = float((gx + gy) / 2.0 * (max(g.shape) / 256.0))
    else:
        sharp = 0.0
    clipped = float(((g <= 2) | (g >= 253)).mean())
    return QualityFacts(
        pixels=int(d.width) * int(d.height),
        jpeg_quality=int(d.jpeg_quality),
        lossless=bool(d.lossless),
        sharpness=round(sharp, 4),
        colourfulness=round(colourfulness(rgb), 3),
        border=round(float(border_fraction), 4),
        clipped=round(clipped, 4),
    )
