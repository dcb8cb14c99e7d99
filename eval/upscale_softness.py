"""How upscaling and blur move the keeper check's softness measurement, on the CC0 photos.

    python3 eval/upscale_softness.py [--photos ../shared/bench/photos/pypi]

Each photo (at most 1000 px, at least 128 px on its short side) is encoded at JPEG quality 90,
then upscaled by 1.25, 1.5, 2 and 3 (bicubic) and blurred (Gaussian, sigma 1 and 2) and encoded
the same way; prints the median and 10th/90th percentile of the softness change, and the
exponent ``a`` of the model ``2 - s(u) = (2 - s(1)) * u ** -a`` that group/keeper.py uses
(UPSCALE_EXPONENT).  These photos are not the development set.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from neardup.features.decode import native_softness

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "bench" / "photos" / "pypi")
    a = ap.parse_args()

    def soft(im: Image.Image) -> float:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        return native_softness(buf.getvalue(), min_side=1 << 30)[0]

    base, delta, expo = [], {}, {}
    for p in sorted(a.photos.rglob("*")):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        im = Image.open(p).convert("RGB")
        if max(im.size) > 1200:
            im.thumbnail((1000, 1000), Image.Resampling.LANCZOS)
        if min(im.size) < 128:
            continue
        s0 = soft(im)
        base.append(s0)
        for u in (1.25, 1.5, 2.0, 3.0):
            s = soft(im.resize((int(im.width * u), int(im.height * u)), Image.Resampling.BICUBIC))
            delta.setdefault(f"upscale {u}x", []).append(s - s0)
            if s < 2.0 and s0 < 2.0:
                expo.setdefault(u, []).append(np.log((2 - s0) / (2 - s)) / np.log(u))
        for sigma in (1.0, 2.0):
            delta.setdefault(f"blur sigma {sigma}", []).append(soft(im.filter(ImageFilter.GaussianBlur(sigma))) - s0)
    print(f"{len(base)} photos; softness of the originals: median {np.median(base):.3f}")
    for k, v in delta.items():
        print(f"{k:16s} change median {np.median(v):+.3f}  p10 {np.percentile(v, 10):+.3f}  p90 {np.percentile(v, 90):+.3f}")
    for u, v in expo.items():
        print(f"exponent from {u}x: median {np.median(v):.2f}")


if __name__ == "__main__":
    main()
