"""How often crops and tilts reach the candidate stage, per set of hashed windows.

    python3 eval/windows.py /tmp/devset [--radius 8]

For each window set (full frame, centre 88%, and some wider or anisotropic alternatives),
the share of crop / tilt / combo copies whose 64-bit hash of some window is within the radius
of the other image's full frame (best of 8 orientations), and how many unrelated pairs do so.
The 88% centre window is what neardup uses; the rest is exploration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from neardup.evaluate import load_truth
from neardup.features.decode import decode
from neardup.features.hashes import dct_coefficients, dct_hash_variants, to_gray, trim_borders

WINDOWS = [(1.0, 1.0), (0.88, 0.88), (0.8, 0.8), (0.9, 0.75), (0.75, 0.9)]
SETS = [[0], [0, 1], [0, 1, 2], [0, 1, 3, 4], [0, 1, 2, 3, 4]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("devset", type=Path)
    ap.add_argument("--radius", type=int, default=8)
    a = ap.parse_args()
    rows = load_truth(str(a.devset / "truth.csv"))
    hashes = []
    for r in rows:
        d = decode((a.devset / "images" / r["file"]).read_bytes())
        g = to_gray(d.small).astype(np.float32)
        t, b, left, right = trim_borders(g)
        g = np.ascontiguousarray(g[t:b, left:right])
        h, w = g.shape
        per = []
        for fx, fy in WINDOWS:
            dh, dw = int(round(h * (1 - fy) / 2)), int(round(w * (1 - fx) / 2))
            win = np.ascontiguousarray(g[dh : h - dh, dw : w - dw])
            per.append(dct_hash_variants(dct_coefficients(win, k=8))[:, 0])
        hashes.append(per)
    H = np.array(hashes, dtype=np.uint64)  # (n, windows, 8)
    n = len(rows)
    group = np.array([r["group"] for r in rows])
    same = group[:, None] == group[None, :]
    orig = {r["group"]: i for i, r in enumerate(rows) if r["role"] == "original"}

    def dist(wi: int) -> np.ndarray:
        d = np.full((n, n), 99, np.int16)
        for v in range(8):
            d = np.minimum(d, np.bitwise_count(H[:, wi, 0][:, None] ^ H[None, :, 0, v]).astype(np.int16))
        return np.minimum(d, d.T)

    per_window = [dist(i) for i in range(len(WINDOWS))]
    for sel in SETS:
        d = np.min([per_window[i] for i in sel], axis=0)
        np.fill_diagonal(d, 99)
        hit = d <= a.radius
        out = []
        for edit in ("crop", "tilt", "combo"):
            pairs = [(i, orig[r["group"]]) for i, r in enumerate(rows) if r["role"] == "copy" and r["transform"].startswith(edit)]
            out.append(f"{edit} {np.mean([hit[i, j] for i, j in pairs]):.2f}")
        print(f"windows {[WINDOWS[i] for i in sel]}: unrelated pairs {int((hit & ~same).sum() // 2)}, " + ", ".join(out))


if __name__ == "__main__":
    main()
