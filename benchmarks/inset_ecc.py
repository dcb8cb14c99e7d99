"""ECC from a layout's placement (verify.local.match_inset): coarse to fine against full size.

    python3 benchmarks/inset_ecc.py [--devset /tmp/devset] [--repeats 3]

Records every placement thorough mode refines (the outer and inner thumbnails and the box)
in two cold scans: the dev set and eval/contains.py's own population of insets, frames and
slides (photos outside the dev set).  Then replays them, one thread, under the full-size
refinement (30 steps to 1e-4, the default before 2026-12-07) and the default
(``ECC_PLACED_COARSE`` on the halved views, then ``ECC_PLACED_FINE``): seconds (best of
``--repeats``), placements accepted by each, and how the accepted ones' worst tile and fine
detail moved.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import neardup
from neardup.embed.model import default_model_spec
from neardup.pipeline import thorough
from neardup.verify import local

ROOT = Path(__file__).resolve().parents[1]

Placement = tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]


def record(scan: Callable[[], None]) -> list[Placement]:
    """The placements ``match_inset`` is asked to check while ``scan`` runs."""
    got: list[Placement] = []
    lock = threading.Lock()
    original = thorough.match_inset

    def recording(outer: local.LocalFeatures, inner: local.LocalFeatures, box: tuple[float, float, float, float],
                  params: local.LocalParams) -> local.LocalEvidence:
        with lock:
            got.append((outer.thumb, inner.thumb, tuple(box)))  # type: ignore[arg-type]
        return original(outer, inner, box, params)

    thorough.match_inset = recording
    try:
        scan()
    finally:
        thorough.match_inset = original
    return got


def features(thumb: np.ndarray) -> local.LocalFeatures:
    empty = np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return local.LocalFeatures(*empty, *empty, (thumb.shape[1], thumb.shape[0]), thumb)


def replay(placements: list[Placement], coarse: tuple[int, float] | None, fine: tuple[int, float],
           repeats: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    saved = local.ECC_PLACED_COARSE, local.ECC_PLACED_FINE
    local.ECC_PLACED_COARSE, local.ECC_PLACED_FINE = coarse, fine
    params = local.LocalParams()
    try:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            out = [local.match_inset(features(o), features(i), box, params) for o, i, box in placements]
            best = min(best, time.perf_counter() - t)
    finally:
        local.ECC_PLACED_COARSE, local.ECC_PLACED_FINE = saved
    return (best, np.array([e.accepted(params) for e in out]), np.array([e.ncc for e in out], float),
            np.array([e.detail for e in out], float))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devset", type=Path, default=Path("/tmp/devset"))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cv2.setNumThreads(1)  # one OpenCV thread, as the local stage runs it

    def devset() -> None:
        with tempfile.TemporaryDirectory() as cache:
            (Path(cache) / "models").symlink_to(Path(default_model_spec(None).path).parent)
            neardup.scan([str(a.devset / "images")], cache=cache, mode="thorough")

    def population() -> None:
        sys.path.insert(0, str(ROOT / "eval"))
        import contains  # noqa: PLC0415 - eval/ is not a package

        sys.argv = ["contains.py"]
        contains.main()

    if not (a.devset / "images").is_dir():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "devset.py"), "--out", str(a.devset)], check=True)
    for name, scan in (("eval/contains.py", population), ("dev set", devset)):
        placements = record(scan)
        full = replay(placements, None, (30, 1e-4), a.repeats)
        now = replay(placements, local.ECC_PLACED_COARSE, local.ECC_PLACED_FINE, a.repeats)
        both = full[1] & now[1]
        moved = (f", accepted by both: worst tile {np.median(now[2][both] - full[2][both]):+.4f} median / "
                 f"{np.min(now[2][both] - full[2][both]):+.4f} least, detail {np.median(now[3][both] - full[3][both]):+.4f} "
                 f"median" if both.any() else "")
        print(f"{name}: {len(placements)} placements; full size 30 / 1e-4 {full[0]:.2f} s, accepted {full[1].sum()}; "
              f"coarse {local.ECC_PLACED_COARSE} + fine {local.ECC_PLACED_FINE} {now[0]:.2f} s "
              f"({full[0] / now[0]:.2f}x), accepted {now[1].sum()} (lost {(full[1] & ~now[1]).sum()}, "
              f"new {(now[1] & ~full[1]).sum()}){moved}")


if __name__ == "__main__":
    main()
