"""How often the lineage check (``features/lineage.py``) finds a re-save, and how often it
claims one where there is none, on generated populations of real photographs.

    python3 eval/lineage.py [--photos DIR] [--n 40] [--seed 7]

Each photo is first halved in size (area resampling), which erases any JPEG history of its own,
so the population starts lossless.  Then, with qualities drawn from a seeded RNG:

* re-saves (the check should fire): a JPEG at q1 in 50..92 decoded and saved as PNG, as a
  mirrored PNG, as a quarter-turned PNG, as a PNG cropped by 1-39 pixels (its grid no longer
  starts at a corner), and as a JPEG at q2 = q1 + 3..(98 - q1);
* originals (the check must not fire): two JPEGs at q1 and q2 made from the same lossless
  source (is the q2 one made from the q1 one?  no), and the lossless source itself.

The thresholds in ``features/lineage.py`` come from the models written there (rounding
spread, lattice periodicity), not from these numbers; this script shows where they land.  The
photos default to BSDS500's test split in ``../shared/bench`` (research licence: read, never
copied); any folder of photos works.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from neardup.features.jpeg import read_header
from neardup.features.lineage import block_coefficients, carries_table, primary_quality

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "photos" / "bsds500" / "test"


def _jpeg(im: Image.Image, q: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEFAULT)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        sys.exit(f"no photos in {args.photos}")
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(files), size=min(args.n, len(files)), replace=False)
    fired: dict[str, list[bool]] = {k: [] for k in ("png", "mirrored png", "turned png", "cropped png", "jpeg q2>q1",
                                                    "null: sibling jpegs", "null: lossless source")}
    for i in sorted(chosen.tolist()):
        with Image.open(files[i]) as src:
            im = src.convert("RGB").reduce(2)
        q1 = int(rng.integers(50, 93))
        q2 = int(min(98, q1 + rng.integers(3, max(4, 99 - q1))))
        first = _jpeg(im, q1)
        table = read_header(first).table
        dec = _decoded(first)
        for name, data in (("png", _png(dec)), ("mirrored png", _png(ImageOps.mirror(dec))),
                           ("turned png", _png(dec.transpose(Image.Transpose.ROTATE_90))),
                           ("cropped png", _png(dec.crop((int(rng.integers(1, 40)), int(rng.integers(1, 40)),
                                                          dec.width - int(rng.integers(0, 9)), dec.height))))):
            fired[name].append(bool(carries_table(block_coefficients(data), table)))
        fired["jpeg q2>q1"].append(bool(carries_table(block_coefficients(_jpeg(dec, q2)), table)))
        fired["null: sibling jpegs"].append(bool(carries_table(block_coefficients(_jpeg(im, q2)), table)))
        fired["null: lossless source"].append(primary_quality(block_coefficients(_png(im))) > 0)
    print(f"{len(chosen)} photos from {args.photos} (seed {args.seed}), halved; q1 in 50..92, q2 = q1 + 3..")
    print(f"{'case':<24}{'fired':>8}{'rate':>8}")
    for name, got in fired.items():
        print(f"{name:<24}{sum(got):>8}{np.mean(got):>8.2f}")


if __name__ == "__main__":
    main()
