"""Make a small sample folder for a first scan: CC0 test photos plus edited copies of them.

    python3 benchmarks/make_sample.py /tmp/neardup-sample

The images go to ``OUT/photos``, so that the scan's own outputs (``results.json``, ``report.html``)
can sit beside them under ``OUT`` without being scanned themselves.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def main(out: str) -> None:
    dst = Path(out) / "photos"
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(DATA.glob("*.*")):
        if p.suffix not in (".jpg", ".png"):
            continue
        shutil.copy(p, dst / p.name)
        with Image.open(p) as im:
            im = im.convert("RGB")
            im.resize((im.width // 2, im.height // 2)).save(dst / f"{p.stem}_small.jpg", quality=70)
            ImageOps.mirror(im).save(dst / f"{p.stem}_mirror.jpg", quality=85)
            ImageEnhance.Brightness(im).enhance(1.2).save(dst / f"{p.stem}_bright.webp", quality=80)
            if p.suffix == ".jpg" and p.stem == "quokka":  # a lossless re-save of a JPEG: not better than it
                ImageOps.mirror(im).save(dst / f"{p.stem}_mirror.png")
    shutil.copy(next(DATA.glob("*.jpg")), dst / "exact_copy.jpg")
    print(f"sample written to {dst}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "neardup-sample")
