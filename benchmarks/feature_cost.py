"""What the extractor costs an image, part by part, on one core.

    python3 benchmarks/feature_cost.py /tmp/mosaic10k [--n 2048] [--batch 32]

Reads ``--n`` files of the folder, then times (best of 5, microseconds an image) the reduced
decode, the content digest, the whole feature batch (``features_batch``, chunks of ``--batch`` as
a worker makes them) and its parts that have a compiled loop beside their NumPy reference (the
pixel planes and the tilted views, each both ways: they give the same bits), and the crop-window
and tilted-frame codes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from neardup.errors import DecodeError
from neardup.features import loops, windows
from neardup.features.decode import decode
from neardup.features.extract import digest_bytes, features_batch, pixel_planes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    data = [p.read_bytes() for p in sorted(q for q in a.folder.rglob("*") if q.is_file())[: a.n]]
    decoded, digests = [], []
    for d in data:
        try:
            decoded.append(decode(d))
            digests.append(digest_bytes(d))
        except DecodeError:
            pass
    n, b = len(decoded), a.batch
    chunks = [(decoded[s : s + b], digests[s : s + b]) for s in range(0, n, b)]
    feats = features_batch(decoded, digests)
    sig, aspect = feats.sig, feats.width / np.maximum(feats.height, 1)
    canvases = [np.stack([np.pad(d.small, ((0, 96 - d.small.shape[0]), (0, 128 - d.small.shape[1]), (0, 0)))
                          for d in ds]) for ds, _ in chunks if all(d.small.shape[0] <= 96 and d.small.shape[1] <= 128 for d in ds)]

    def timed(name: str, fn: Callable[[], object], count: int) -> None:
        best = min(_once(fn) for _ in range(5))
        print(f"{name:42s} {best / max(count, 1) * 1e6:8.1f} us an image")

    print(f"{n:,} images of {a.folder}, chunks of {b}; compiled loops built: {loops.COMPILED}")
    timed("decode (reduced)", lambda: [decode(d) for d in data], len(data))
    timed("digest", lambda: [digest_bytes(d) for d in data], len(data))
    timed("features_batch (all features)", lambda: [features_batch(ds, gs) for ds, gs in chunks], n)
    timed("  window + tilt codes", lambda: [windows.search_codes(sig[s : s + b], aspect[s : s + b]) for s in range(0, n, b)], n)
    engines = ("numpy", "compiled") if loops.COMPILED else ("numpy",)
    m = sum(len(c) for c in canvases)
    for engine in engines:
        if canvases:
            timed(f"  pixel planes, {engine} (96x128 canvases)", lambda e=engine: [pixel_planes(c, engine=e) for c in canvases], m)
        timed(f"  tilted views, {engine}", lambda e=engine: [windows.tilted_layouts(sig[s : s + b], aspect[s : s + b], engine=e)
                                                             for s in range(0, n, b)], n)


def _once(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
