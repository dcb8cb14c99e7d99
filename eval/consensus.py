"""What the keeper's consensus distance (group/consensus.py) measures between an original and
each kind of copy, on a labelled set (make_benchmark.py's truth.csv):

    python3 eval/consensus.py /tmp/devset [--per 12]

Prints, per edit, the median and 90th percentile of the distance in grey levels.  Faithful
copies (re-encodes, resizes, lossless re-saves) should sit below ``FAITHFUL``; edits above it.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from neardup.features.extract import extract
from neardup.group.consensus import FAITHFUL, distances


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--per", type=int, default=12, help="copies measured per edit")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.folder / "truth.csv")))
    original = {r["group"]: r["file"] for r in rows if r["role"] == "original"}
    seen: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["role"] != "copy" or len(seen[r["transform"].split(":")[0]]) >= a.per:
            continue
        f = [extract((a.folder / "images" / name).read_bytes()) for name in (original[r["group"]], r["file"])]
        d = distances(np.stack([x.sig for x in f]), np.stack([x.colour for x in f]), np.stack([x.d256 for x in f]))
        seen[r["transform"].split(":")[0]].append(float(d[0, 1]))
    print(f"FAITHFUL = {FAITHFUL}")
    for edit, v in sorted(seen.items(), key=lambda kv: np.median(kv[1])):
        print(f"  {edit:14s} median {np.median(v):6.2f}  p90 {np.percentile(v, 90):6.2f}  (n={len(v)})")


if __name__ == "__main__":
    main()
