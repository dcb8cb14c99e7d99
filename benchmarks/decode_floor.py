"""The decode floor: reduced-size decoding alone, on the same files and cores as a scan.

    python3 benchmarks/decode_floor.py /tmp/devset/images [--workers 2] [--side 256]

Reads every file and decodes it the way neardup's extraction does (``Image.draft`` to the
smallest DCT scale whose long side is still >= ``--side`` for JPEG, a plain load otherwise),
and nothing else, in a process pool of ``--workers``.  Also the full-size decode for
comparison.  neardup's extraction speed is then judged as a share of this floor.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image


def _decode(args: tuple[list[str], int, bool]) -> int:
    paths, side, reduced = args
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        import io

        with Image.open(io.BytesIO(data)) as im:
            if reduced and im.format == "JPEG":
                w, h = im.size
                s = side / max(w, h)
                im.draft("RGB", (max(1, int(w * s)), max(1, int(h * s))))
            im.load()
    return len(paths)


def floor(files: list[str], workers: int, side: int, reduced: bool) -> float:
    chunks = [(files[i : i + 32], side, reduced) for i in range(0, len(files), 32)]
    t = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        n = sum(pool.map(_decode, chunks))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    files = sorted(str(p) for p in a.folder.rglob("*") if p.is_file())
    for reduced in (True, False):
        rates = sorted(floor(files, a.workers, a.side, reduced) for _ in range(a.repeats))
        print(f"{'reduced' if reduced else 'full'} decode, {a.workers} workers: median {rates[len(rates) // 2]:,.0f} "
              f"images/s over {len(files):,} files (runs: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
