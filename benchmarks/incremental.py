"""Cost of an incremental run: scan 99% of a folder, add the last 1%, scan again (same cache).

    python3 benchmarks/incremental.py /tmp/devset/images [--share 0.01]

Prints the full run's wall time, the incremental run's, their ratio, the per-stage seconds of
the incremental run, and an unchanged rerun's wall time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import neardup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--share", type=float, default=0.01)
    a = ap.parse_args()
    files = sorted(p for p in a.folder.iterdir() if p.is_file())
    k = max(1, int(len(files) * a.share))
    with tempfile.TemporaryDirectory() as tmp:
        imgs, cache = Path(tmp) / "imgs", Path(tmp) / "cache"
        imgs.mkdir()
        for p in files[:-k]:
            shutil.copy(p, imgs / p.name)
        t = time.perf_counter()
        neardup.scan([str(imgs)], cache=str(cache))
        full = time.perf_counter() - t
        for p in files[-k:]:
            shutil.copy(p, imgs / p.name)
        t = time.perf_counter()
        r = neardup.scan([str(imgs)], cache=str(cache))
        inc = time.perf_counter() - t
        t = time.perf_counter()
        neardup.scan([str(imgs)], cache=str(cache))
        same = time.perf_counter() - t
    print(f"full run, {len(files) - k:,} images: {full:.2f} s; +{k:,} new ({k / (len(files) - k):.1%}): {inc:.2f} s "
          f"= {inc / full:.1%} of the full run (decoded {r.stats['decoded']}); unchanged rerun {same:.2f} s")
    print({name: st["seconds"] for name, st in r.stats["stages"].items()})


if __name__ == "__main__":
    main()
