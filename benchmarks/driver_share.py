"""The driver's share of a scan's CPU: is the one process that lists, writes the store, searches
and verifies ever what the workers wait for?

    python3 benchmarks/driver_share.py /tmp/mosaic10k [--workers 2]

Runs ``neardup.scan`` in this process on a fresh cache, fast mode, and prints its wall time, the
CPU seconds of this process (the driver: listing, store writes, search, verification, grouping,
with its threads) and of its children (the extraction workers, reaped when the pool closes),
the driver's share of the total, and the driver's CPU seconds during extraction alone (read from
``/proc/self/stat`` when the extraction stage ends, through the scan's progress callback).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import neardup


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage not in ("list", "extract"):  # the first call of a later stage ends the extraction
            marks.setdefault("extract_done", _cpu_self())

    with tempfile.TemporaryDirectory() as cache:
        t, start = time.perf_counter(), _cpu_self()
        r = neardup.scan([str(a.folder)], cache=cache, workers=a.workers, progress=progress)
        wall = time.perf_counter() - t
    driver = _cpu_self() - start
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = kids.ru_utime + kids.ru_stime
    extract = r.stats["stages"]["extract"]["seconds"]
    during = marks.get("extract_done", _cpu_self()) - start
    print(f"{r.stats['images']:,} images, wall {wall:.2f} s, {a.workers} workers: driver {driver:.2f} CPU s, "
          f"workers {workers:.2f} CPU s, driver share {driver / (driver + workers):.0%}; during extraction "
          f"({extract:.2f} s) the driver used {during:.2f} CPU s = {during / extract:.0%} of one core")


if __name__ == "__main__":
    main()
