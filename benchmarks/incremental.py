"""Cost of an incremental run: scan 99% of a folder, add the last 1%, scan again (same cache).

    python3 benchmarks/incremental.py /tmp/devset/images [--share 0.01]
    python3 benchmarks/scale.py --n 100000 && python3 benchmarks/incremental.py /tmp/ndscale/v2-100000
    python3 benchmarks/incremental.py /tmp/ndscale/v2-100000 --profile /tmp/incprof   # + cProfile of both reruns

The files (any tree) are hard-linked into a temporary folder, every ``1/share``-th one held back;
``neardup.scan`` runs in this process with a fresh cache, then again after the held-back files
are linked in, then once more unchanged.  Prints the three wall times, the incremental run's
share of the full run, and the per-stage seconds and counters of the incremental run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import tempfile
import time
from pathlib import Path

import neardup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--share", type=float, default=0.01)
    ap.add_argument("--profile", type=Path, default=None,
                    help="also write cProfile stats of the incremental and the unchanged run here (inc.prof, same.prof)")
    a = ap.parse_args()
    files = sorted(p for p in a.folder.rglob("*") if p.is_file())
    every = max(2, round(1 / a.share))
    later = files[every - 1 :: every]
    held = set(later)
    with tempfile.TemporaryDirectory(dir=a.folder.parent) as tmp:
        imgs, cache = Path(tmp) / "imgs", Path(tmp) / "cache"

        def link(p: Path) -> None:
            dest = imgs / p.relative_to(a.folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dest)

        for p in files:
            if p not in held:
                link(p)
        t = time.perf_counter()
        neardup.scan([str(imgs)], cache=str(cache))
        full = time.perf_counter() - t
        for p in later:
            link(p)
        r, inc = _timed(imgs, cache, a.profile / "inc.prof" if a.profile else None)
        _, same = _timed(imgs, cache, a.profile / "same.prof" if a.profile else None)
        snapshot = sum(f.stat().st_size for f in (cache / "runs").rglob("*") if f.is_file())
    print(f"full run, {len(files) - len(later):,} images: {full:.2f} s; +{len(later):,} new "
          f"({len(later) / (len(files) - len(later)):.1%}): {inc:.2f} s = {inc / full:.1%} of the full run "
          f"(decoded {r.stats['decoded']}, searched {r.stats['searched_contents']} contents, reused "
          f"{r.stats['reused_pairs']} pairs); unchanged rerun {same:.2f} s = {same / full:.1%}")
    print(json.dumps({name: st["seconds"] for name, st in r.stats["stages"].items()}))
    print(f"run snapshot on disk: {snapshot / 2**20:.0f} MiB ({snapshot / len(files):,.0f} bytes an image)")


def _timed(imgs: Path, cache: Path, profile: Path | None) -> tuple[neardup.ScanResult, float]:
    """One scan on the cache, timed (and profiled into ``profile`` when given)."""
    prof = cProfile.Profile() if profile is not None else None
    t = time.perf_counter()
    if prof is not None:
        prof.enable()
    r = neardup.scan([str(imgs)], cache=str(cache))
    wall = time.perf_counter() - t
    if prof is not None and profile is not None:
        prof.disable()
        profile.parent.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(profile)
    return r, wall


if __name__ == "__main__":
    main()
