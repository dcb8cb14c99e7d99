"""Unchanged reruns on one kept cache: wall and stage seconds of each.

    python3 benchmarks/unchanged_rerun.py /tmp/ndscale/v2-100000 --cache /tmp/rerun-cache [--runs 3]
    PYTHONPATH=/tmp/wt/src python3 benchmarks/unchanged_rerun.py ...   # another checkout, for an A/B
    python3 benchmarks/unchanged_rerun.py FOLDER --cache DIR --listing    # + the listing alone, both ways

The first call fills the cache with a full scan (not timed); each call then makes ``--runs``
unchanged reruns in this process and prints them, the first marked as the process's first (its
imports and the page cache's state make it slower).  Alternate two checkouts' calls on the same
cache for an A/B: the machine's speed drifts by the minute (docs/benchmarks.md, "Placements
refined coarse to fine; reruns that touch less").  With ``--listing``, first the folder's listing
alone, by ``os.scandir`` and by the compiled loop, alternating three times.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import neardup
from neardup.sources.local import COMPILED, walk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--listing", action="store_true", help="first time the listing alone, both ways")
    a = ap.parse_args()
    if a.listing:
        for _ in range(3):
            took = {}
            for engine in ("scandir", "auto"):
                t = time.perf_counter()
                n = sum(1 for _ in walk(str(a.folder), engine=engine))
                took[engine] = time.perf_counter() - t
            print(f"listing {n:,} entries: os.scandir {took['scandir']:.3f} s, compiled {took['auto']:.3f} s"
                  + ("" if COMPILED else " (not compiled here: both are os.scandir)"))
    if not (a.cache / "features.sqlite").exists():
        neardup.scan([str(a.folder)], cache=str(a.cache))
    for k in range(a.runs):
        t = time.perf_counter()
        r = neardup.scan([str(a.folder)], cache=str(a.cache))
        wall = time.perf_counter() - t
        stages = {name: round(st["seconds"], 3) for name, st in r.stats["stages"].items()}
        print(f"{'first ' if not k else ''}rerun: {wall:.2f} s, {r.stats['images']:,} images, "
              f"decoded {r.stats['decoded']}; stages {json.dumps(stages)}")


if __name__ == "__main__":
    main()
