"""Multi-index chunks of neighbouring bits against interleaved ones, on a collection's real codes.

    python3 benchmarks/chunk_layout.py /tmp/mosaic10k [--windows 2000000] [--queries 150000]

Scans the folder into a temporary cache (fast mode), then takes the crop-window codes the run
snapshot kept (up to ``--windows``, from rows that have windows) as the index and the full-frame
codes (with their orientation alternatives, repeated up to ``--queries``) as the queries, as the
window search does.  The index interleaves bits (chunk ``i % m``); the contiguous layout is the
same index over codes whose bits were first permuted so that each interleaved chunk holds a run
of neighbouring bits.  Prints the seconds of the queries in each layout (best of 2, one thread),
the probe hits each confirmed, and how crowded each chunk's buckets are.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import neardup
from neardup.candidates import MultiIndex


def _permuted(codes: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Codes whose bit ``i`` is bit ``perm[i]`` of the input."""
    bits = np.unpackbits(np.ascontiguousarray(codes, "<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    return np.ascontiguousarray(np.packbits(bits[:, perm], axis=1, bitorder="little")).view("<u8").ravel()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--windows", type=int, default=2_000_000)
    ap.add_argument("--queries", type=int, default=150_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        neardup.scan([str(a.folder)], cache=tmp)
        seg = next((Path(tmp) / "runs").glob("*/seg-*"))
        windows = np.load(seg / "windows.npy", mmap_mode="r")
        low = np.load(seg / "low_info.npy")
        per = windows.shape[1]
        rows = np.flatnonzero(~low)[: max(1, a.windows // per)]
        window_codes = np.asarray(windows[rows]).ravel()
        frames = np.concatenate([np.load(seg / "p64.npy"), np.load(seg / "alt_p64.npy")])
    frames = np.tile(frames, -(-a.queries // len(frames)))[: a.queries]
    m = 3  # what choose_chunks picks for a block of 2M codes at radius 8
    contiguous = np.zeros(64, np.int64)
    start = 0
    for c in range(m):
        width = len(range(c, 64, m))
        contiguous[c + m * np.arange(width)] = start + np.arange(width)
        start += width
    for name, perm in (("neighbouring bits", contiguous), ("interleaved", np.arange(64))):
        index_codes, query_codes = _permuted(window_codes, perm), _permuted(frames, perm)
        index = MultiIndex(index_codes, np.arange(len(index_codes)), radius=8, n_chunks=m)
        # per chunk: how many codes (itself included) an indexed code shares its bucket with, on average
        crowding = [float((np.diff(offsets.astype(np.int64)) ** 2).sum() / max(index.size, 1))
                    for _, _, _, offsets, *_ in index.chunks]
        best, hits = np.inf, 0
        for _ in range(2):
            t = time.perf_counter()
            hits = sum(len(b) for b in index.query(query_codes, np.arange(len(query_codes)) + len(index_codes)))
            best = min(best, time.perf_counter() - t)
        print(f"{name}: {len(index_codes):,} window codes queried by {len(query_codes):,} frame codes in {best:.2f} s "
              f"({hits:,} pairs within the radius, duplicates included); codes a bucket shares, by chunk: "
              + ", ".join(f"{c:.1f}" for c in crowding))


if __name__ == "__main__":
    main()
