"""What the crop windows cost the exact search, alone: MultiIndex on uniform random 64-bit codes.

    python3 benchmarks/window_queries.py [--n 100000] [--windows 14 36 81]

For each count of window codes a row: (A) index the n full frames and query the n x W window
codes (what candidates/search.py does; memory flat), and with ``--swap`` also (B) index the
window codes and query the full frames (faster, but holds n x W index entries).  Random codes
are a lower bound on real ones (real codes cluster, so buckets are fuller).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neardup.candidates.mih import MultiIndex


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--windows", type=int, nargs="+", default=[14, 36, 81])
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--swap", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    full = rng.integers(0, 2**63, a.n, dtype=np.int64).astype(np.uint64)
    ids = np.arange(a.n)
    for w in a.windows:
        win = rng.integers(0, 2**63, a.n * w, dtype=np.int64).astype(np.uint64)
        wids = np.repeat(ids, w)
        t = time.perf_counter()
        pairs = sum(len(b) for b in MultiIndex(full, ids, radius=a.radius).query(win, wids))
        line = f"n={a.n} windows={w}: query the windows {time.perf_counter() - t:.2f} s ({pairs} pairs)"
        if a.swap:
            t = time.perf_counter()
            swapped = sum(len(b) for b in MultiIndex(win, wids, radius=a.radius).query(full, ids))
            line += f"; index the windows {time.perf_counter() - t:.2f} s ({swapped} pairs)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
