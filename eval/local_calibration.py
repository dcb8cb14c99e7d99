"""Distributions of the local-verification evidence on labelled pairs, to set its thresholds.

    python3 eval/local_calibration.py /tmp/devset --cache /tmp/devth

Runs thorough mode on the dev set and on the "same scene, other shot" images (UKBench,
INRIA Holidays), records the evidence of every pair that reaches local verification, and
prints, for true copies and for non-copies, the quantiles of the worst-tile correlation and
of the fine-detail correlation, then what each threshold pair would keep.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

import neardup
from neardup.evaluate import load_truth
from neardup.pipeline import thorough as th
from neardup.verify import local as loc

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"


def record(paths: list[str], cache: str) -> list[tuple[str, str, loc.LocalEvidence]]:
    out: list[tuple[str, str, loc.LocalEvidence]] = []
    orig = th.Thorough._local_verdicts

    def spy(self, a, b, cos):  # type: ignore[no-untyped-def]
        feats = self._features_many(np.unique(np.concatenate([a, b])))
        for x, y in zip(a.tolist(), b.tolist()):
            fa, fb = feats[x], feats[y]
            if fa is None or fb is None:
                continue
            pa = self.fc.run_paths([self.cols.digest(x)])[self.cols.digest(x)][0]
            pb = self.fc.run_paths([self.cols.digest(y)])[self.cols.digest(y)][0]
            out.append((pa, pb, loc.match_pair(fa, fb, self.local)))
        return orig(self, a, b, cos)

    th.Thorough._local_verdicts = spy  # type: ignore[method-assign]
    try:
        neardup.scan(paths, cache=cache, mode="thorough")
    finally:
        th.Thorough._local_verdicts = orig  # type: ignore[method-assign]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("devset", type=Path)
    ap.add_argument("--cache", default=None)
    a = ap.parse_args()
    truth = {r["file"]: r for r in load_truth(str(a.devset / "truth.csv"))}
    pos, neg = [], []
    for pa, pb, ev in record([str(a.devset / "images")], a.cache):
        ra, rb = truth[Path(pa).name], truth[Path(pb).name]
        same = ra["group"] == rb["group"] and not ra["group"].startswith("n")
        (pos if same else neg).append(ev)
    other = [str(SHARED / "real" / "nd_samples" / "ukbench"), str(SHARED / "real" / "nd_samples" / "inria_holidays"),
             str(SHARED / "real" / "imagededup" / "history_extras")]
    print("other shots with a homography (inliers, worst tile, detail):")
    for pa, pb, ev in record(other, a.cache):
        neg.append(ev)  # no copies among these: every pair is another shot
        if ev.inliers >= 15:
            print(f"  {Path(pa).name} {Path(pb).name}: {ev.inliers} inliers, {ev.ncc:.2f}, {ev.detail:.2f}")
    for name, evs in (("copies", pos), ("non-copies", neg)):
        w = np.array([e.ncc for e in evs if e.inliers >= 15], dtype=float)
        d = np.array([e.detail for e in evs if e.inliers >= 15], dtype=float)
        print(f"{name}: {len(evs)} checked, {len(w)} with >= 15 inliers")
        if len(w):
            print("  worst tile  q0/5/25/50:", np.round(np.nanpercentile(w, [0, 5, 25, 50]), 3))
            print("  detail      q0/5/25/50:", np.round(np.nanpercentile(d, [0, 5, 25, 50]), 3))
    print("threshold (worst, detail): copies kept, non-copies kept")
    for wt, dt in itertools.product((0.75, 0.80, 0.85, 0.90), (0.0, 0.7, 0.8, 0.85)):
        p = loc.LocalParams(aligned_ncc=wt, detail_ncc=dt)
        print(f"  {wt:.2f} {dt:.2f}: {sum(e.accepted(p) for e in pos)} / {len(pos)}, "
              f"{sum(e.accepted(p) for e in neg)} / {len(neg)}")


if __name__ == "__main__":
    main()
