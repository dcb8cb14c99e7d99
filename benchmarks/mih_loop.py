"""The multi-index query's two loops, NumPy and compiled (candidates/mih_loop.c), on one index.

    python3 benchmarks/mih_loop.py --snapshot CACHE/runs/KEY    # a run snapshot's real codes
    python3 benchmarks/mih_loop.py                                 # seeded look-alike codes

With ``--snapshot`` (the ``runs/KEY`` folder a scan leaves in its cache: e.g. ``neardup scan
/tmp/ndscale/v2-100000 --cache /tmp/c -o /dev/null``, then ``/tmp/c/runs/*``), the first saved window block (2M crop-window and tilted-frame codes)
is loaded into memory and queried by the first ``--queries`` frame codes of the same run, as a
scan's window pass does.  Without it, 2M codes in clusters of near neighbours (a few bits apart,
as look-alike textures make them) and queries drawn from them with a few bits flipped.  Prints
the seconds of each loop (the best of ``--repeats``), one thread, and checks that both found the
same pairs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neardup.candidates.mih import COMPILED, MultiIndex, PairBatch


def _flipped(rng: np.random.Generator, codes: np.ndarray, bits: int) -> np.ndarray:
    out = codes.copy()
    for _ in range(bits):
        out ^= np.uint64(1) << rng.integers(0, 64, len(out)).astype(np.uint64)
    return out


def _synthetic(n: int, queries: int, seed: int) -> tuple[MultiIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**63, n // 20, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    codes = _flipped(rng, centres[rng.integers(0, len(centres), n)], 4)
    index = MultiIndex(codes, np.arange(n), radius=8)
    return index, _flipped(rng, codes[rng.integers(0, n, queries)], 3)


def _snapshot(folder: Path, queries: int) -> tuple[MultiIndex, np.ndarray]:
    segment = sorted(folder.glob("seg-*"))[0]
    index = MultiIndex.load(segment / "windows-000")
    index.chunks = [tuple(np.array(x) if isinstance(x, np.ndarray) else x for x in chunk)  # type: ignore[misc]
                    for chunk in index.chunks]  # in memory, as a scan's window block is
    frames = np.concatenate([np.load(segment / "p64.npy"), np.load(segment / "alt_p64.npy")])
    return index, frames[:queries]


def _pairs(batches: Iterator[PairBatch]) -> set[tuple[int, int, int]]:
    out: set[tuple[int, int, int]] = set()
    for pb in batches:
        out.update(zip(pb.a.tolist(), pb.b.tolist(), pb.distance.tolist()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot", type=Path, default=None, help="a scan cache's runs/KEY folder")
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--codes", type=int, default=2_000_000, help="indexed codes (without --snapshot)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if not COMPILED:
        raise SystemExit("the compiled loop is not installed: reinstall neardup where a C compiler is")
    index, queries = _snapshot(a.snapshot, a.queries) if a.snapshot else _synthetic(a.codes, a.queries, 0)
    ids = np.arange(len(queries)) + index.size  # apart from the indexed ids
    seconds: dict[str, float] = {}
    found: dict[str, set[tuple[int, int, int]]] = {}
    for _ in range(a.repeats):
        for engine in ("numpy", "compiled"):
            t = time.perf_counter()
            found[engine] = _pairs(index.query(queries, ids, engine=engine))  # type: ignore[arg-type]
            seconds[engine] = min(seconds.get(engine, np.inf), time.perf_counter() - t)
    same = found["numpy"] == found["compiled"]
    print(f"{index.size:,} indexed codes, {len(queries):,} queries, {len(found['numpy']):,} pairs: "
          f"NumPy {seconds['numpy']:.2f} s, compiled {seconds['compiled']:.2f} s "
          f"({seconds['numpy'] / seconds['compiled']:.2f}x); same pairs: {same}")
    if not same:
        raise SystemExit("the loops disagree")


if __name__ == "__main__":
    main()
