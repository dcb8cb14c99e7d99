"""What a cluster driver pays per image: the size of the features a worker sends back, and the
cost of writing them to the SQLite cache.

    python3 benchmarks/cache_writes.py /tmp/devset/images [--copies 20]

Extracts every file once (in this process), then writes the outcomes ``--copies`` times under
new digests into a fresh cache in batches of 128, as the driver does; prints the pickled bytes
per image (the network volume back to the driver) and the write time per image.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import tempfile
import time
from pathlib import Path

from neardup.cache.sqlite import FeatureCache
from neardup.pipeline.extract import extract_one


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--copies", type=int, default=20)
    a = ap.parse_args()
    files = sorted(p for p in a.folder.rglob("*") if p.is_file())
    outs = [o for o in (extract_one(str(p), p.stat().st_size, p.stat().st_mtime_ns, 200_000_000) for p in files)
            if o.features is not None]
    per = len(pickle.dumps(outs, protocol=pickle.HIGHEST_PROTOCOL)) / len(outs)
    with tempfile.TemporaryDirectory() as tmp, FeatureCache(tmp) as fc:
        t = time.perf_counter()
        n = 0
        for c in range(a.copies):
            batch = []
            for i, o in enumerate(outs):
                d = c.to_bytes(2, "big") + i.to_bytes(4, "big") + bytes(10)
                batch.append(dataclasses.replace(o, path=f"{o.path}#{c}", digest=d,
                                                 features=dataclasses.replace(o.features, digest=d)))
            for s in range(0, len(batch), 128):
                b = batch[s : s + 128]
                fc.put_batch([(o.path, o.size, o.mtime_ns, o.digest, None, None, None, None) for o in b],
                             [o.features for o in b if o.features is not None])
                n += len(b)
        dt = time.perf_counter() - t
        size = (Path(tmp) / "features.sqlite").stat().st_size
    print(f"features sent back per image: {per:,.0f} bytes pickled; driver cache writes: {dt / n * 1e6:,.0f} us per "
          f"image ({n / dt:,.0f} images/s on one core), {size / n:,.0f} bytes per image on disk ({n:,} images)")


if __name__ == "__main__":
    main()
