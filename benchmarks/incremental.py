"""Cost of an incremental run: scan 99% of a folder, add the last 1%, scan again (same cache).

    python3 benchmarks/incremental.py /tmp/devset/images [--share 0.01]
    python3 benchmarks/scale.py --n 100000 && python3 benchmarks/incremental.py /tmp/ndscale/v2-100000

The files (any tree) are hard-linked into a temporary folder, every ``1/share``-th one held back;
``neardup.scan`` runs in this process with a fresh cache, then again after the held-back files
are linked in, then once more unchanged.  Prints the three wall times, the incremental run's
share of the full run, and the per-stage seconds and counters of the incremental run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import neardup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--share", type=float, default=0.01)
    a = ap.parse_args()
    files = sorted(p for p in a.folder.rglob("*") if p.is_file())
    every = max(2, round(1 / a.share))
    later = files[every - 1 :: every]
    held = set(later)
    with tempfile.TemporaryDirectory(dir=a.folder.parent) as tmp:
        imgs, cache = Path(tmp) / "imgs", Path(tmp) / "cache"

        def link(p: Path) -> None:
            dest = imgs / p.relative_to(a.folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dest)

        for p in files:
            if p not in held:
                link(p)
        t = time.perf_counter()
        neardup.scan([str(imgs)], cache=str(cache))
        full = time.perf_counter() - t
        for p in later:
            link(p)
        t = time.perf_counter()
        r = neardup.scan([str(imgs)], cache=str(cache))
        inc = time.perf_counter() - t
        t = time.perf_counter()
        neardup.scan([str(imgs)], cache=str(cache))
        same = time.perf_counter() - t
    print(f"full run, {len(files) - len(later):,} images: {full:.2f} s; +{len(later):,} new "
          f"({len(later) / (len(files) - len(later)):.1%}): {inc:.2f} s = {inc / full:.1%} of the full run "
          f"(decoded {r.stats['decoded']}, searched {r.stats['searched_contents']} contents, reused "
          f"{r.stats['reused_pairs']} pairs); unchanged rerun {same:.2f} s = {same / full:.1%}")
    print(json.dumps({name: st["seconds"] for name, st in r.stats["stages"].items()}))


if __name__ == "__main__":
    main()
