"""What a cluster driver pays per image: the size of the features a worker sends back, and the
cost of writing them to the SQLite cache.

    python3 benchmarks/cache_writes.py /tmp/devset/images [--copies 20] [--batch 128]

Extracts every file once (in this process), then writes the outcomes ``--copies`` times under
new (random) digests into a fresh cache, ``--batch`` images a transaction; prints the pickled bytes
per image (the network volume back to the driver) and the write time per image.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

from neardup.pipeline.extract import Item, Worker
from neardup.sources import FileEntry
from neardup.store import FeatureCache, FileRow


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128, help="images written in one transaction")
    a = ap.parse_args()
    files = sorted(p for p in a.folder.rglob("*") if p.is_file())
    items: list[Item] = [FileEntry(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    worker = Worker(None, None)
    chunks = [worker.extract_chunk(items[s : s + a.batch], 200_000_000) for s in range(0, len(items), a.batch)]
    n_fresh = sum(len(ch.features) for ch in chunks)
    per = sum(len(pickle.dumps(ch, protocol=pickle.HIGHEST_PROTOCOL)) for ch in chunks) / max(1, n_fresh)
    with tempfile.TemporaryDirectory() as tmp, FeatureCache(tmp) as fc:
        t = time.perf_counter()
        n = 0
        rng = np.random.default_rng(0)
        for c in range(a.copies):
            for k, ch in enumerate(chunks):
                fresh = [o for o in ch.outcomes if o.fresh]
                # content digests are hashes: each lands at a random place in the store's key order
                digests = rng.integers(0, 256, (len(fresh), 16), dtype=np.uint8)
                feats = dataclasses.replace(ch.features, digest=digests)
                fc.put_batch([FileRow(f"{o.path}#{c}", o.size, o.mtime_ns, d.tobytes())
                              for o, d in zip(fresh, digests)], feats)
                n += len(fresh)
        dt = time.perf_counter() - t
        size = (Path(tmp) / "features.sqlite").stat().st_size
    print(f"features sent back per image: {per:,.0f} bytes pickled; driver cache writes: {dt / n * 1e6:,.0f} us per "
          f"image ({n / dt:,.0f} images/s on one core), {size / n:,.0f} bytes per image on disk ({n:,} images, "
          f"{a.batch} a transaction)")


if __name__ == "__main__":
    main()
