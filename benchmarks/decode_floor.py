"""The decode floor: reduced-size decoding alone, on the same files and cores as a scan.

    python3 benchmarks/decode_floor.py /tmp/devset/images [--workers 2]

Reads every file and decodes it exactly as neardup's extraction does
(``neardup.features.decode.decode``: JPEGs by libjpeg-turbo's DCT scaling to the smallest scale
whose long side is still 96 pixels, other formats by Pillow, then an integer box reduction),
and nothing else: no digest, no features, no cache.  In a process pool of ``--workers``, the
pool's start-up included, the interpreter's not.  Also the full-size decode (Pillow, every
pixel) for comparison.  neardup's speed is then judged as a share of this floor.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image


def _decode(args: tuple[list[str], bool]) -> int:
    from neardup.errors import DecodeError
    from neardup.features.decode import decode

    paths, reduced = args
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        if reduced:
            try:
                decode(data)
            except DecodeError:
                pass
        else:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
    return len(paths)


def floor(files: list[str], workers: int, reduced: bool) -> float:
    chunks = [(files[i : i + 32], reduced) for i in range(0, len(files), 32)]
    t = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        n = sum(pool.map(_decode, chunks))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    files = sorted(str(p) for p in a.folder.rglob("*") if p.is_file())
    for reduced in (True, False):
        rates = sorted(floor(files, a.workers, reduced) for _ in range(a.repeats))
        print(f"{'reduced' if reduced else 'full'} decode, {a.workers} workers: median {rates[len(rates) // 2]:,.0f} "
              f"images/s over {len(files):,} files (runs: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
