"""Scale run: N small distinct images with planted copies and a look-alike hub population.

    python3 benchmarks/scale.py --n 10000 --root /tmp/ndscale

Images are 96x72 JPEGs of random smooth textures (distinct), 2% planted re-encoded copies, and
5% "hubs": a small random patch on a plain white background.  Made once per N, then
`neardup.scan` runs with a fresh cache; prints images/s, per-stage seconds and peak RSS of the
driver and of the worker processes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import neardup


def make(root: Path, n: int, seed: int = 3) -> None:
    done = root.parent / f".done-{n}"
    if done.exists():
        return
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n_copy, n_hub = n // 50, n // 20
    for i in range(n - n_copy - n_hub):
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((96, 72), Image.Resampling.BICUBIC)
        sub = root / f"{i // 1000:04d}"
        sub.mkdir(exist_ok=True)
        im.save(sub / f"img{i:07d}.jpg", quality=90)
        if i < n_copy:
            im.save(sub / f"img{i:07d}_copy.jpg", quality=60)
    for j in range(n_hub):
        canvas = Image.new("RGB", (96, 72), (255, 255, 255))
        patch = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)).resize((14, 14), Image.Resampling.BICUBIC)
        canvas.paste(patch, (int(rng.integers(10, 70)), int(rng.integers(10, 50))))
        sub = root / "hubs"
        sub.mkdir(exist_ok=True)
        canvas.save(sub / f"hub{j:07d}.jpg", quality=90)
    done.touch()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--root", type=Path, default=Path("/tmp/ndscale"))
    ap.add_argument("--out", type=Path, default=None, help="also write results.json here")
    a = ap.parse_args()
    root = a.root / str(a.n)
    make(root, a.n)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        r = neardup.scan([str(root)], cache=cache)
        wall = time.perf_counter() - t
    planted = sum(1 for g in r.groups if len(g.members) == 2
                  and {Path(m).name.replace("_copy", "") for m in g.members} == {Path(g.members[0]).name.replace("_copy", "")})
    print(f"n={r.stats['images']:,} wall {wall:.1f} s, {r.stats['images'] / wall:.0f} images/s, "
          f"groups {r.stats['groups']:,} ({planted:,} exactly a planted pair of {a.n // 50:,}), "
          f"candidates {r.stats['candidate_pairs']:,}, verified {r.stats['verified_pairs']:,}")
    if a.out:
        a.out.write_text(r.to_json())
    print(json.dumps(r.stats["stages"]))


if __name__ == "__main__":
    main()
