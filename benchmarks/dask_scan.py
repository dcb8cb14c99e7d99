"""Extraction on Dask against the local process pool: images/s and the driver's peak memory.

    python3 benchmarks/dask_scan.py /tmp/devset/images [--repeats 3]

Cold cache each run, fast mode, in-process; the Dask runs start a LocalCluster of processes
(1 or 2 workers, 1 thread each) inside the timed scan, as `neardup scan --executor dask` does.
Alternates the settings; prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import neardup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    n = sum(1 for p in a.folder.rglob("*") if p.is_file())
    settings = {"local pool, 2 workers": {"workers": 2}, "dask, 1 worker": {"executor": "dask", "workers": 1},
                "dask, 2 workers": {"executor": "dask", "workers": 2}}
    rates: dict[str, list[float]] = {k: [] for k in settings}
    peaks: dict[str, list[float]] = {k: [] for k in settings}
    shapes = set()
    for _ in range(a.repeats):
        for k, kw in settings.items():
            with tempfile.TemporaryDirectory() as cache:
                t = time.perf_counter()
                r = neardup.scan([str(a.folder)], cache=cache, **kw)
                rates[k].append(n / (time.perf_counter() - t))
                peaks[k].append(max(st.get("peak_rss_mb", 0) for st in r.stats["stages"].values()))
                shapes.add(tuple(sorted(tuple(g.members) for g in r.groups)))
    for k in settings:
        print(f"{k}: median {statistics.median(rates[k]):,.0f} images/s ({', '.join(f'{x:,.0f}' for x in rates[k])}), "
              f"driver peak RSS {statistics.median(peaks[k]):.0f} MB")
    print(f"identical groups across all runs: {len(shapes) == 1}")


if __name__ == "__main__":
    main()
