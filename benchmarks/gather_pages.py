"""What gathering scattered rows from a file-mapped column maps into the process, and costs.

    python3 benchmarks/gather_pages.py [--rows 1000000] [--take 8000]

A column of ``--rows`` x 93 window codes (744 MB at a million rows) is spilled to a file
mapping (neardup.spill) and filled; then the last 12 codes (the tilt codes) of ``--take``
scattered rows (a crop batch's distinct rows) are gathered at once, then with
``neardup.spill.take_rows``.  Prints the milliseconds of each and the largest file-backed RSS
(``RssFile``) seen before a page release: what the gather had mapped.  Linux only.
"""

from __future__ import annotations

import argparse
import mmap
import time

import numpy as np
from proc_memory import rss_mb

from neardup import spill


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--take", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--madv-random", action="store_true",
                    help="advise the mapping MADV_RANDOM first (it does not stop a fault mapping a whole large folio)")
    a = ap.parse_args()
    column = spill.spilled_zeros((a.rows, 93), np.uint64)
    for s in range(0, a.rows, spill.CHUNK_ROWS):
        column[s : s + spill.CHUNK_ROWS] = np.arange(s, min(s + spill.CHUNK_ROWS, a.rows), dtype=np.uint64)[:, None]
        spill.release_pages(column)
    if a.madv_random:
        mapping = column.base
        while isinstance(mapping, np.ndarray):
            mapping = mapping.base
        memoryview(mapping).obj.madvise(mmap.MADV_RANDOM)  # type: ignore[union-attr]
    tilts = column[:, 81:]
    rng = np.random.default_rng(7)
    seen = [0.0]
    release = spill.release_pages

    def watched(arr: np.ndarray) -> None:
        seen[0] = max(seen[0], rss_mb("RssFile"))
        release(arr)

    spill.release_pages = watched  # type: ignore[assignment]
    base = rss_mb("RssFile")
    for name, take in (("at once", lambda rows: np.array(tilts[rows])), ("take_rows", lambda rows: spill.take_rows(tilts, rows))):
        times, peaks = [], []
        for _ in range(a.repeats):
            rows = np.unique(rng.integers(0, a.rows, a.take))
            seen[0] = 0.0
            t = time.perf_counter()
            got = take(rows)
            times.append((time.perf_counter() - t) * 1e3)
            seen[0] = max(seen[0], rss_mb("RssFile"))
            watched(column)
            peaks.append(seen[0] - base)
            assert np.array_equal(got[:, 0], rows.astype(np.uint64))
        print(f"{name:10s}: {np.median(times):6.1f} ms, mapped at most {max(peaks):5.0f} MB "
              f"({a.take:,} rows of {a.rows:,}; {column.nbytes >> 20} MB column)")


if __name__ == "__main__":
    main()
