"""How many chunks a multi-index should have: measured against what ``choose_chunks`` picks.

    python3 benchmarks/chunk_count.py /tmp/mosaic10k [--queries 50000]

Scans the folder into a temporary cache (fast mode) and takes the crop-window codes the run
snapshot kept.  Indexes of several sizes are made of the first rows' window codes, and queried
by ``--queries`` window codes of other rows (as a rerun's fresh windows query the saved frames,
and as frames query a block of windows: real codes, crowded as real codes are).  For each size
and each chunk count from 3 to 8 it prints the seconds to build the index and to run the
queries (best of 2, one thread, the compiled loops), and the count ``choose_chunks`` picks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import neardup
from neardup.candidates import MultiIndex, choose_chunks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--queries", type=int, default=50_000)
    ap.add_argument("--sizes", default="15000,50000,150000,500000")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        neardup.scan([str(a.folder)], cache=tmp)
        seg = next((Path(tmp) / "runs").glob("*/seg-*"))
        low = np.load(seg / "low_info.npy")
        codes = np.asarray(np.load(seg / "windows.npy", mmap_mode="r")[np.flatnonzero(~low)]).ravel()
    queries = codes[-a.queries :]
    print(f"{len(codes):,} window codes; {len(queries):,} queries from the last rows; radius 8")
    print("| indexed codes | " + " | ".join(f"m={m} build + query s" for m in range(3, 9)) + " | fastest | picked |")
    print("| --- " * 9 + "|")
    for size in (int(s) for s in a.sizes.split(",")):
        index_codes = codes[:size]
        cells, totals = [], {}
        for m in range(3, 9):
            build = query = np.inf
            for _ in range(2):
                t = time.perf_counter()
                index = MultiIndex(index_codes, np.arange(size), radius=8, n_chunks=m)
                build = min(build, time.perf_counter() - t)
                t = time.perf_counter()
                for _pairs in index.query(queries, np.arange(len(queries)) + size, by_query=True):
                    pass
                query = min(query, time.perf_counter() - t)
            totals[m] = build + query
            cells.append(f"{build:.3f} + {query:.3f}")
        fastest = min(totals, key=totals.__getitem__)
        picked = choose_chunks(size, 8, queries=len(queries))
        print(f"| {size:,} | " + " | ".join(cells) + f" | {fastest} | {picked} ({totals[picked] / totals[fastest]:.2f}x) |")


if __name__ == "__main__":
    main()
