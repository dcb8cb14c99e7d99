"""What a scan's driver holds at its peak: the largest allocations by where they were made.

    python3 benchmarks/memory_peak.py /tmp/ndscale/v2-100000 [more folders] [--top 12] [--step-mb 15] [--cache DIR]

Runs ``neardup.scan`` of the folders in this process on a fresh cache (or ``--cache``: kept, so a
second run measures the stages after extraction) with ``tracemalloc`` on (12 frames a
trace; the scan runs ~5x slower).  A thread takes a snapshot each time the traced memory passes
its last high by ``--step-mb``; the last one is the peak's.  Prints the traced peak, the RSS at
that moment, and the ``--top`` allocation sites (neardup's frames of each traceback).  NumPy
reports its arrays to tracemalloc; what C libraries allocate themselves (SQLite's page cache,
the allocator's free lists) is in the RSS only.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from proc_memory import rss_mb

import neardup


def _forget_runs(cache: Path) -> None:
    """The cache without its runs' pairs and snapshots (a benchmark's reach into the store's
    tables: the library never forgets a run by itself)."""
    shutil.rmtree(cache / "runs", ignore_errors=True)
    with sqlite3.connect(cache / "features.sqlite") as db:
        for table in ("run_contents", "run_pairs", "run_groups"):
            db.execute(f"DELETE FROM {table}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--cache", type=Path, default=None, help="keep the feature cache here")
    ap.add_argument("--forget-runs", action="store_true",
                    help="drop the --cache's earlier runs first: the search runs again on the cached features")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--step-mb", type=float, default=15.0)
    a = ap.parse_args()
    if a.forget_runs and a.cache is not None:
        _forget_runs(a.cache)
    tracemalloc.start(12)
    high = [0]
    peak: list[tuple[int, float, tracemalloc.Snapshot]] = []
    stop = threading.Event()
    t0 = time.perf_counter()

    def watch() -> None:
        while not stop.wait(0.3):
            traced, _ = tracemalloc.get_traced_memory()
            if traced > high[0] + a.step_mb * 2**20:
                high[0] = traced
                print(f"  {time.perf_counter() - t0:6.0f} s: traced {traced / 2**20:.0f} MB, RSS {rss_mb():.0f} MB",
                      flush=True)
                peak[:] = [(traced, rss_mb(), tracemalloc.take_snapshot())]

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        t = time.perf_counter()
        r = neardup.scan([str(f) for f in a.folders], cache=str(a.cache or tmp))
        wall = time.perf_counter() - t
    print(f"candidate pairs {r.stats['candidate_pairs']:,}, reused pairs {r.stats['reused_pairs']:,}; "
          + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in r.stats["stages"].items()))
    stop.set()
    watcher.join()
    if not peak:
        print(f"wall {wall:.1f} s; traced memory never passed {a.step_mb} MB")
        return
    traced, rss, snap = peak[0]
    print(f"wall {wall:.1f} s (under tracemalloc); traced peak {traced / 2**20:.0f} MB, RSS then {rss:.0f} MB")
    for stat in snap.statistics("traceback")[: a.top]:
        print(f"{stat.size / 2**20:7.1f} MB in {stat.count} blocks")
        for line in stat.traceback.format():
            if "neardup" in line or not line.lstrip().startswith("File"):
                print("      ", line.strip()[:160])


if __name__ == "__main__":
    main()
