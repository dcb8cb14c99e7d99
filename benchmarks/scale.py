"""Scale run: N small distinct images with planted copies and a look-alike hub population.

    python3 benchmarks/scale.py --n 10000 --root /tmp/ndscale

Images are 96x72 JPEGs of random smooth textures (distinct), 2% planted re-encoded copies, and
5% "hubs": a small random patch on a plain white background.  Made once per N, then
`neardup.scan` runs with a fresh cache; prints images/s, per-stage seconds and peak RSS of the
driver and of the worker processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

import neardup
from neardup import spill
from neardup.candidates import search as candidate_search
from neardup.verify.rules import CropQueue


def _make_folder(args: tuple[Path, int, int, int, int, int]) -> None:
    root, folder, start, stop, n_copy, seed = args
    rng = np.random.default_rng([seed, folder])
    sub = root / f"{folder:04d}"
    sub.mkdir(parents=True, exist_ok=True)
    for i in range(start, stop):
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((96, 72), Image.Resampling.BICUBIC)
        im.save(sub / f"img{i:07d}.jpg", quality=90)
        if i < n_copy:
            im.save(sub / f"img{i:07d}_copy.jpg", quality=60)


def _make_hubs(args: tuple[Path, int, int, int]) -> None:
    root, start, stop, seed = args
    rng = np.random.default_rng([seed, 10**6, start])
    sub = root / "hubs" / f"{start // 1000:04d}"
    sub.mkdir(parents=True, exist_ok=True)
    for j in range(start, stop):
        canvas = Image.new("RGB", (96, 72), (255, 255, 255))
        patch = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)).resize((14, 14), Image.Resampling.BICUBIC)
        canvas.paste(patch, (int(rng.integers(10, 70)), int(rng.integers(10, 50))))
        canvas.save(sub / f"hub{j:07d}.jpg", quality=90)


def make(root: Path, n: int, seed: int = 3) -> None:
    """Write the collection once (in parallel, deterministic per folder); a marker beside it says done."""
    done = root.parent / f".done-v2-{n}"
    if done.exists():
        return
    n_copy, n_hub = n // 50, n // 20
    n_pic = n - n_copy - n_hub
    jobs = [(root, f, f * 1000, min(n_pic, (f + 1) * 1000), n_copy, seed) for f in range((n_pic + 999) // 1000)]
    hubs = [(root, s, min(n_hub, s + 1000), seed) for s in range(0, n_hub, 1000)]
    with Pool(os.cpu_count() or 1) as pool:
        pool.map(_make_folder, jobs, chunksize=4)
        pool.map(_make_hubs, hubs, chunksize=4)
    done.touch()


def _progress_log() -> Callable[[str, int, int | None], None]:
    """A progress callback that prints a stage's start and each tenth of it it passes."""
    done: dict[str, int] = {}
    told: dict[str, int] = {}

    def update(stage: str, advance: int, total: int | None) -> None:
        done[stage] = done.get(stage, 0) + advance
        tenth = done[stage] * 10 // total if total else 0
        if told.get(stage, -1) < tenth:
            told[stage] = tenth
            print(f"{time.time():.1f} {stage} {done[stage]:,}/{total or 0:,}", file=sys.stderr, flush=True)

    return update


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--root", type=Path, default=Path("/tmp/ndscale"))
    ap.add_argument("--out", type=Path, default=None, help="also write results.json here")
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep the feature cache here (a rerun then measures the stages after extraction)")
    ap.add_argument("--crop-pairs", action="store_true",
                    help="also count the pairs handed to the crop and tilt tests (wraps CropQueue.add)")
    ap.add_argument("--log-progress", action="store_true",
                    help="print each stage's start and every tenth of it, with seconds since the epoch (to line "
                         "up with tree_pss.py --trace)")
    ap.add_argument("--window-block", type=int, default=None,
                    help="window codes indexed at a time (neardup.candidates.search.WINDOW_BLOCK), for an A/B")
    ap.add_argument("--no-spill", action="store_true",
                    help="hold the window codes in memory whatever their size (neardup.spill.SPILL_BYTES), for an A/B")
    a = ap.parse_args()
    if a.log_progress:  # the search's phases (frames, then window blocks) log at debug level
        logging.basicConfig(format="%(created).1f %(name)s %(message)s", stream=sys.stderr)
        logging.getLogger("neardup.candidates").setLevel(logging.DEBUG)
    if a.window_block:
        candidate_search.WINDOW_BLOCK = a.window_block
    if a.no_spill:
        spill.SPILL_BYTES = 1 << 62
    queued = [0]
    if a.crop_pairs:
        add = CropQueue.add

        def counted(self: CropQueue, pair_a: np.ndarray, *rest: np.ndarray) -> None:
            queued[0] += len(pair_a)
            add(self, pair_a, *rest)

        CropQueue.add = counted  # type: ignore[method-assign]
    root = a.root / f"v2-{a.n}"
    make(root, a.n)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        r = neardup.scan([str(root)], cache=str(a.cache or tmp), progress=_progress_log() if a.log_progress else None)
        wall = time.perf_counter() - t
    planted = sum(1 for g in r.groups if len(g.members) == 2
                  and {Path(m).name.replace("_copy", "") for m in g.members} == {Path(g.members[0]).name.replace("_copy", "")})
    print(f"n={r.stats['images']:,} wall {wall:.1f} s, {r.stats['images'] / wall:.0f} images/s, "
          f"groups {r.stats['groups']:,} ({planted:,} exactly a planted pair of {a.n // 50:,}), "
          f"candidates {r.stats['candidate_pairs']:,}, verified {r.stats['verified_pairs']:,}")
    if a.crop_pairs:
        print(f"pairs handed to the crop and tilt tests: {queued[0]:,}")
    if a.out:
        a.out.write_text(r.to_json())
    print(json.dumps(r.stats["stages"]))


if __name__ == "__main__":
    main()
