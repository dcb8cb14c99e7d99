"""Distance distributions behind the default thresholds, on a labelled set.

    python3 eval/distances.py /tmp/devset [--radius 8]

For every copy: the 256-bit and 64-bit hash distance to its original (best of the 8
orientations), per edit.  For every image: the distance to its nearest *unrelated* image.
For the crop path: the best layout correlation among unrelated pairs that the 64-bit search
at ``--radius`` returns and the 256-bit hash rejects, against the same for true copies.
These are the numbers docs/benchmarks.md quotes when it explains the thresholds.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from neardup.evaluate import load_truth
from neardup.features import extract
from neardup.verify.rules import VerifyParams, crop_ncc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("devset", type=Path)
    ap.add_argument("--radius", type=int, default=8)
    a = ap.parse_args()
    rows = load_truth(str(a.devset / "truth.csv"))
    feats = [extract((a.devset / "images" / r["file"]).read_bytes()) for r in rows]
    n = len(rows)
    group = np.array([r["group"] for r in rows])
    d256 = np.stack([f.d256 for f in feats])  # (n, 8, 4)
    p64 = np.stack([f.p64 for f in feats])  # (n, 8)
    D = np.full((n, n), 999, np.int16)
    P = np.full((n, n), 999, np.int16)
    for v in range(8):
        D = np.minimum(D, np.bitwise_count(d256[:, None, 0, :] ^ d256[None, :, v, :]).sum(-1).astype(np.int16))
        P = np.minimum(P, np.bitwise_count(p64[:, None, 0] ^ p64[None, :, v]).astype(np.int16))
    np.fill_diagonal(D, 999)
    np.fill_diagonal(P, 999)
    same = group[:, None] == group[None, :]
    nearest_d = np.where(same, 999, D).min(1)
    nearest_p = np.where(same, 999, P).min(1)
    q = [0, 0.5, 1, 5, 50]
    low = np.array([f.low_info for f in feats])
    for name, sel in (("", ~low), (" (low-information)", low)):
        if sel.any():
            print(f"nearest unrelated image{name}, 256-bit: min/0.5/1/5/50th pct "
                  f"{np.percentile(nearest_d[sel], q).round(1).tolist()}")
            print(f"nearest unrelated image{name},  64-bit: min/0.5/1/5/50th pct "
                  f"{np.percentile(nearest_p[sel], q).round(1).tolist()}")
    orig = {r["group"]: i for i, r in enumerate(rows) if r["role"] == "original"}
    per: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r["role"] == "copy":
            j = orig[r["group"]]
            per[f"{r['tier']}:{r['transform'].split(':')[0]}"].append((int(D[i, j]), int(P[i, j])))
    print(f"{'edit':16s} {'n':>3s}  256-bit median/p90   64-bit median/p90")
    for k in sorted(per):
        x = np.array(per[k])
        print(f"{k:16s} {len(x):3d}  {np.median(x[:, 0]):6.0f} {np.percentile(x[:, 0], 90):5.0f}"
              f"          {np.median(x[:, 1]):5.0f} {np.percentile(x[:, 1], 90):5.0f}")
    thr = VerifyParams().hash_threshold
    iu = np.triu_indices(n, 1)
    # as the scan: low-information images never take the crop path
    crop_path = (P[iu] <= a.radius) & (D[iu] > thr) & ~low[iu[0]] & ~low[iu[1]]
    scores: dict[bool, list[float]] = {True: [], False: []}
    worst: list[tuple[float, str, str]] = []
    for i, j in zip(iu[0][crop_path], iu[1][crop_path]):
        v = int(np.bitwise_count(p64[i, :1] ^ p64[j]).argmin())
        c = crop_ncc(feats[i].sig, feats[j].sig, v)
        scores[bool(same[i, j])].append(c)
        if not same[i, j]:
            worst.append((c, f"{rows[i]['role']}:{rows[i]['transform']}", f"{rows[j]['role']}:{rows[j]['transform']}"))
    for k, name in ((False, "unrelated"), (True, "true copies")):
        s = np.array(scores[k])
        if s.size:
            print(f"crop path, {name}: {s.size} pairs, best correlation {s.max():.3f}, "
                  f">= {VerifyParams().crop_ncc}: {(s >= VerifyParams().crop_ncc).sum()}")
    for c, x, y in sorted(worst, reverse=True)[:5]:
        print(f"  unrelated on the crop path: {c:.3f}  {x} / {y}")


if __name__ == "__main__":
    main()
