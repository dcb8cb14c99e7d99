"""A labelled set whose originals are ordinary JPEGs, to test the keeper away from the dev set's
encodings (issue 18): the dev set's BSDS originals are high-quality JPEGs, so "highest JPEG
quality" finds them; here every original is a JPEG at q60-82 (a phone, a web download), so an
edited copy re-saved at q70-92 outscores it on encoding alone.

    python3 eval/keeper_set.py [--out /tmp/keeperset] [--seed 11] [--groups 120]

Re-saves BSDS500 (test) and Kodak24 at a seeded quality in 60..82 into OUT/photos, builds the
set with ../shared/bench/make_benchmark.py (same edits, other seed, other encodings), scans it
with a fresh cache and prints ../shared/bench/score.py's summary.  Research-licence photos are
read from ../shared and written only under OUT (a temporary folder), never into the repo.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/keeperset"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--groups", type=int, default=120)
    a = ap.parse_args()
    r = random.Random(a.seed)
    photos = a.out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    sources = sorted((BENCH / "photos" / "bsds500" / "test").glob("*.jpg")) + sorted((BENCH / "real" / "kodak24").glob("*.png"))
    for p in sources:
        Image.open(p).convert("RGB").save(photos / f"{p.stem}.jpg", "JPEG", quality=r.randint(60, 82))
    subprocess.run([sys.executable, str(BENCH / "make_benchmark.py"), "--photos", str(photos), "--out",
                    str(a.out / "set"), "--seed", str(a.seed), "--groups", str(a.groups), "--halves", "20",
                    "--objects", "40"], check=True)
    with tempfile.TemporaryDirectory() as cache:
        results = a.out / "results.json"
        subprocess.run([sys.executable, "-m", "neardup", "scan", str(a.out / "set" / "images"), "-o", str(results),
                        "--cache", cache], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(BENCH / "score.py"), str(a.out / "set" / "truth.csv"), str(results)], check=True)


if __name__ == "__main__":
    main()
