"""A multi-megapixel copy of part of the dev set, where reduced-size decoding pays.

    python3 benchmarks/make_megapixel.py /tmp/devset /tmp/devset-mp [--groups 60]

Takes whole groups of the dev set (and its negatives and distractors in the same proportion),
upscales every image to a random 2-12 megapixels (Lanczos, seeded per file), re-encodes it as
JPEG quality 90 under the same name, and writes the matching truth.csv.  The edits themselves
are untouched, so the labels still hold.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from neardup.evaluate import load_truth


def _one(args: tuple[str, str]) -> None:
    src, dst = args
    seed = int.from_bytes(hashlib.blake2b(Path(src).name.encode(), digest_size=4).digest(), "big")
    mp = 2.0 + (seed % 1000) / 1000 * 10.0  # 2-12 megapixels
    with Image.open(src) as im:
        im = im.convert("RGB")
        s = math.sqrt(mp * 1e6 / (im.width * im.height))
        im.resize((int(im.width * s), int(im.height * s)), Image.Resampling.LANCZOS).save(
            Path(dst).with_suffix(".jpg"), quality=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("devset", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--groups", type=int, default=60)
    a = ap.parse_args()
    rows = load_truth(str(a.devset / "truth.csv"))
    groups = sorted({r["group"] for r in rows if r["role"] in ("original", "copy")})[: a.groups]
    share = a.groups / max(1, len({r["group"] for r in rows if r["role"] in ("original", "copy")}))
    others = [r for r in rows if r["role"] not in ("original", "copy")]
    keep = [r for r in rows if r["group"] in groups] + others[: int(len(others) * share)]
    (a.out / "images").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        list(pool.map(_one, [(str(a.devset / "images" / r["file"]), str(a.out / "images" / r["file"])) for r in keep]))
    for r in keep:
        r["file"] = str(Path(r["file"]).with_suffix(".jpg"))
    with open(a.out / "truth.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    print(f"{len(keep)} images in {a.out / 'images'}")


if __name__ == "__main__":
    main()
