"""The crop test's coarse pass: FFT correlation against direct correlation (both float64).

    python3 benchmarks/crop_coarse.py [--pairs 4096]

Both score every size of the crop grid (CROP_SCALES, the whole frame left out) at every offset,
on 16x16 layouts: smooth random textures and, for half of the pairs, a crop of the other one
resized, as the coarse pass sees them.  Prints the seconds of each (medians of 5) and the largest
difference between their scores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image

from neardup.verify.rules import CROP_SCALES, best_inside_batch, best_inside_coarse


def _layouts(pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = np.empty((pairs, 16, 16), np.float32)
    b = np.empty((pairs, 16, 16), np.float32)
    for i in range(pairs):
        base = Image.fromarray(rng.integers(0, 256, (6, 8), dtype=np.uint8)).resize((64, 64), Image.Resampling.BICUBIC)
        a[i] = np.asarray(base.resize((16, 16), Image.Resampling.BOX), np.float32)
        if i % 2:
            side = int(rng.integers(40, 64))
            y, x = (int(v) for v in rng.integers(0, 64 - side + 1, 2))
            b[i] = np.asarray(base.crop((x, y, x + side, y + side)).resize((16, 16), Image.Resampling.BILINEAR), np.float32)
        else:
            other = Image.fromarray(rng.integers(0, 256, (6, 8), dtype=np.uint8)).resize((16, 16), Image.Resampling.BICUBIC)
            b[i] = np.asarray(other, np.float32)
    return a, b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4096)
    args = ap.parse_args()
    a, b = _layouts(args.pairs)
    sizes = [(round(16 * fy), round(16 * fx)) for fy in CROP_SCALES for fx in CROP_SCALES][:-1]  # not the whole frame
    times: dict[str, list[float]] = {"fft": [], "direct": []}
    for _ in range(5):
        t = time.perf_counter()
        fft = best_inside_batch(a, b, sizes)
        times["fft"].append(time.perf_counter() - t)
        t = time.perf_counter()
        direct = best_inside_coarse(a, b, sizes)
        times["direct"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.pairs:,} pairs, 24 sizes: FFT {med['fft']:.3f} s, direct {med['direct']:.3f} s "
          f"({med['fft'] / med['direct']:.1f}x); largest score difference {np.abs(fft - direct).max():.2e}")


if __name__ == "__main__":
    main()
