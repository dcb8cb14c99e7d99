"""How the shared-frame guard's thresholds land (verify/template.py): what it refuses among true
copies the hash accepts, and among different photos shown in one frame.

    python3 eval/frame_guard.py [--devset /tmp/devset] [--frames 60] [--seed 11]

True copies: every hash-stage pair of a scan of the dev set (benchmarks/devset.py builds it),
labelled by its truth.csv.  Frames: ``--frames`` seeded app-like frames (tests/populations.py)
with 4 different BSDS500 photos each, frame shares 0.40-0.85, every pair of them.  Prints the
refused share per frame-share bin and the true pairs refused, for BLOCK_DIFF 14, 20 and 25.
"""

from __future__ import annotations

import argparse
import csv
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import neardup  # noqa: E402
import neardup.verify.template as guard  # noqa: E402
from neardup.features.extract import extract  # noqa: E402
from neardup.verify.rules import d256_distance  # noqa: E402
from populations import framed, jpeg_bytes, make_frame, pictures  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "photos" / "bsds500" / "test"


def _stack(pairs: list[tuple[object, object]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sa = np.stack([a.sig for a, _ in pairs])  # type: ignore[attr-defined]
    sb = np.stack([b.sig for _, b in pairs])  # type: ignore[attr-defined]
    _, v = d256_distance(np.stack([a.d256 for a, _ in pairs]), np.stack([b.d256 for _, b in pairs]))  # type: ignore[attr-defined]
    return sa, sb, v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", type=Path, default=Path("/tmp/devset"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    truth = {r["file"]: r for r in csv.DictReader(open(a.devset / "truth.csv"))}
    guard.BLOCK_DIFF = float("inf")  # the scan unguarded: every pair the hash accepts
    result = neardup.scan([str(a.devset / "images")], cache=None, workers=1)
    true_pairs, edits = [], []
    for g in result.groups:
        for p in g.pairs:
            if p.stage == "hash":
                true_pairs.append((extract(Path(p.a).read_bytes()), extract(Path(p.b).read_bytes())))
                edits.append("|".join(sorted(truth[Path(x).name]["transform"] for x in (p.a, p.b))))
    rng = np.random.default_rng(a.seed)
    pool = [Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))]
    frame_pairs, shares = [], []
    for t in range(a.frames):
        frame = make_frame(a.seed * 1000 + t, frame_share=float(rng.uniform(0.40, 0.85)))
        shots = [extract(jpeg_bytes(framed(frame, pic, label=str(rng.integers(1, 999))), 85))
                 for pic in pictures(pool, rng, 4)]
        for x, y in combinations(shots, 2):
            frame_pairs.append((x, y))
            shares.append(frame.frame_share)
    share = np.array(shares)
    T, F = _stack(true_pairs), _stack(frame_pairs)
    for tau in (14.0, 20.0, 25.0):
        guard.BLOCK_DIFF = tau
        refused_true = guard.shared_frame(*T)
        refused_frame = guard.shared_frame(*F)
        bins = "  ".join(f"{lo:.2f}-{hi:.2f}: {refused_frame[(share >= lo) & (share < hi)].mean():.3f}"
                         for lo, hi in ((0.40, 0.60), (0.60, 0.75), (0.75, 0.85)))
        print(f"BLOCK_DIFF {tau:4.1f}: true pairs refused {int(refused_true.sum())}/{len(refused_true)} "
              f"{sorted({edits[i] for i in np.flatnonzero(refused_true)})}; frame pairs refused {bins}")


if __name__ == "__main__":
    main()
