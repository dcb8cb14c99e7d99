"""Exact radius search alone: N random 64-bit codes plus planted near copies.

    python3 benchmarks/candidates.py --n 1000000 --radius 8 [--engine numpy]

Prints seconds, pairs found (as the index yields them: a pair comes once from each end and may
come more than once; and distinct), whether every planted pair was found, and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from neardup.candidates import MultiIndex


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--planted", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--engine", choices=("auto", "numpy", "compiled"), default="auto",
                    help="the query loop (MultiIndex.query's engine; auto: compiled where built)")
    a = ap.parse_args()
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2**63, size=a.n, dtype=np.int64).astype(np.uint64) ^ (
        rng.integers(0, 2, size=a.n).astype(np.uint64) << np.uint64(63))
    src = rng.choice(a.n - a.planted, a.planted, replace=False)
    dst = np.arange(a.n - a.planted, a.n)
    for k in range(a.radius):  # each planted copy differs in up to `radius` random bits
        bit = rng.integers(0, 64, a.planted).astype(np.uint64)
        codes[dst] = codes[src] ^ (np.uint64(1) << bit) if k == 0 else codes[dst] ^ ((np.uint64(1) << bit) * (rng.random(a.planted) < 0.8))
    t = time.perf_counter()
    idx = MultiIndex(codes, np.arange(a.n), radius=a.radius)
    t_build = time.perf_counter() - t
    found = set()
    n_pairs = 0
    keys: list[np.ndarray] = []
    planted = set(zip(np.minimum(src, dst).tolist(), np.maximum(src, dst).tolist()))
    d_planted = np.bitwise_count(codes[src] ^ codes[dst])
    for pb in idx.query(codes, np.arange(a.n), threads=a.threads, engine=a.engine):
        n_pairs += len(pb)
        keys.append(np.minimum(pb.a, pb.b) * a.n + np.maximum(pb.a, pb.b))
        m = pb.b >= a.n - a.planted
        found.update(zip(pb.a[m].tolist(), pb.b[m].tolist()))
    t_all = time.perf_counter() - t
    want = {p for p, d in zip(sorted(planted, key=lambda x: x[1]), d_planted[np.argsort(dst)]) if d <= a.radius}
    print(f"n={a.n:,} radius={a.radius} threads={a.threads} engine={a.engine} chunks={len(idx.chunks)} build {t_build:.1f} s, total {t_all:.1f} s, "
          f"pairs {n_pairs:,} ({len(np.unique(np.concatenate(keys))) if keys else 0:,} distinct), planted within radius found {len(want & found)}/{len(want)}, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
