"""Memory and time of one crop-queue flush: 4,096 pairs that pass the coarse bar.

    python3 benchmarks/crop_memory.py [--pairs 4096]

Layouts are smooth random textures and noisy 88% crops of them (as the scale set's look-alikes
and real crops reach the hinted search), the hint pointing at a 27x27 window.  Prints the
seconds of ``crop_match`` and the process's peak RSS above where it started (sampled every 2 ms).
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from neardup.verify.rules import crop_match


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4096)
    n = ap.parse_args().pairs
    rng = np.random.default_rng(0)
    a = np.stack([np.asarray(Image.fromarray(rng.integers(0, 256, (6, 8), dtype=np.uint8)).resize(
        (32, 32), Image.Resampling.BICUBIC)) for _ in range(n)])
    b = np.stack([np.asarray(Image.fromarray(x).crop((2, 2, 30, 30)).resize((32, 32), Image.Resampling.BILINEAR))
                  for x in a]).astype(np.int64)
    b = np.clip(b + rng.integers(-40, 40, b.shape), 0, 255).astype(np.uint8)
    hint = np.tile(np.array([1, 27, 27]), (n, 1))
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    base = _rss_mb()
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t = time.perf_counter()
    match = crop_match(a, b, np.zeros(n, np.int64), hint=hint)
    seconds = time.perf_counter() - t
    done.set()
    watcher.join()
    print(f"{n:,} pairs ({int((match.ncc > 0.82).sum()):,} past the coarse bar): {seconds:.2f} s, "
          f"peak RSS +{peak[0] - base:,.0f} MB")


if __name__ == "__main__":
    main()
