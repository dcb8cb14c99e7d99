"""Saved index: build, open, and queries of 1 and of many images against a scale collection.

    python3 benchmarks/index.py --n 100000 --queries 10000 --root /tmp/ndscale

The collection is benchmarks/scale.py's (N distinct textures, 2% planted copies, 5% look-alike
hubs).  Queries are re-encodings (JPEG quality 55, and every other one mirrored) of originals
picked at random: each must find its original and, where one was planted, that copy too.
Prints build time and peak RSS, open time and RSS after opening, and for 1 and for
``--queries`` images: wall time, queries/s, peak RSS and how many planted copies were found.
Each phase runs in a fresh process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from proc_memory import rss_mb  # noqa: E402
from scale import make  # noqa: E402

import neardup  # noqa: E402
from neardup.embed.model import default_model_spec  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _queries(root: Path, out: Path, k: int, seed: int = 7) -> list[str]:
    """``k`` re-encoded originals (every other one mirrored) in ``out``; their originals' names."""
    originals = sorted(p for p in root.rglob("img*.jpg") if "_copy" not in p.name)
    rng = np.random.default_rng(seed)
    picked = [originals[i] for i in sorted(rng.choice(len(originals), size=min(k, len(originals)), replace=False))]
    out.mkdir(parents=True, exist_ok=True)
    for j, p in enumerate(picked):
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        (ImageOps.mirror(rgb) if j % 2 else rgb).save(out / f"q{j:06d}_{p.stem}.jpg", quality=55)
    return [p.stem for p in picked]


def phase(args: argparse.Namespace) -> dict[str, object]:
    """One measured phase, in this process."""
    t = time.perf_counter()
    if args.phase == "build":
        if args.mode == "thorough":  # the model is exported once beforehand, not timed
            (args.index / "cache").mkdir(parents=True, exist_ok=True)
            (args.index / "cache" / "models").symlink_to(Path(default_model_spec(None).path).parent)
        t = time.perf_counter()
        idx = neardup.Index.build([str(args.collection)], args.index, workers=args.workers, mode=args.mode)
        return {"seconds": time.perf_counter() - t, "peak_rss_mb": _peak_mb(), "files": idx.files, "rows": idx.rows}
    before = rss_mb()
    idx = neardup.Index.open(args.index)
    opened = time.perf_counter() - t
    out: dict[str, object] = {"open_seconds": opened, "rss_after_open_mb": rss_mb(), "rss_before_open_mb": before}
    if args.phase == "open":
        return out
    t = time.perf_counter()
    res = idx.query([str(args.queries)], workers=args.workers)
    wall = time.perf_counter() - t
    found = planted = 0
    missed: list[str] = []
    for q in res.queries:
        stem = Path(q.query).stem.split("_", 1)[1]
        want = {f"{stem}.jpg"} | ({f"{stem}_copy.jpg"} if int(stem[3:]) < args.n // 50 else set())
        got = {Path(m.path).name for m in q.matches}
        planted += len(want)
        found += len(want & got)
        missed += [f"{Path(q.query).name} -> {name}" for name in sorted(want - got)]
    return {**out, "queries": len(res.queries), "query_seconds": wall, "queries_per_s": len(res.queries) / wall,
            "peak_rss_mb": _peak_mb(), "planted": planted, "found": found, "matches": res.stats["matches"],
            "extract_seconds": res.stats["seconds"]["extract"], "missed": missed[:20]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--root", type=Path, default=Path("/tmp/ndscale"))
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--mode", choices=["fast", "thorough"], default="fast")
    ap.add_argument("--keep", action="store_true", help="keep the index (under ROOT/index-N) for another run")
    ap.add_argument("--phase", choices=["build", "open", "query"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--collection", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--queries-dir", dest="queries_dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:
        a.queries = a.queries_dir
        print(json.dumps(phase(a)))
        return
    collection = a.root / f"v2-{a.n}"
    make(collection, a.n)
    index = a.root / f"index-{a.n}{'-thorough' if a.mode == 'thorough' else ''}"
    one, many = a.root / f"queries-{a.n}-1", a.root / f"queries-{a.n}-{a.queries}"
    for folder, k in ((one, 1), (many, a.queries)):
        if not folder.exists():
            _queries(collection, folder, k, seed=7 + k)

    def run(phase_name: str, queries: Path | None = None) -> dict[str, float]:
        cmd = [sys.executable, __file__, "--phase", phase_name, "--n", str(a.n), "--collection", str(collection),
               "--index", str(index), "--workers", str(a.workers), "--mode", a.mode]
        if queries is not None:
            cmd += ["--queries-dir", str(queries)]
        got = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(got.stdout.strip().splitlines()[-1])

    if not (index / "index.json").exists():
        if index.exists():
            shutil.rmtree(index)
        print("build", json.dumps(run("build")))
    print("open", json.dumps(run("open")))
    for q in (one, many):
        # the query images' own features are cached in the index: a second query of the same
        # files would not extract them again, so each measured query starts from their absence
        print(f"query {q.name}", json.dumps(run("query", q)))
    sizes = sum(f.stat().st_size for f in index.rglob("*") if f.is_file() and "cache" not in f.parts)
    cache = sum(f.stat().st_size for f in (index / "cache").rglob("*") if f.is_file())
    print(f"index segments {sizes / 2**20:.1f} MiB, feature cache {cache / 2**20:.1f} MiB, cpus {os.cpu_count()}")
    if not a.keep:
        shutil.rmtree(index)


if __name__ == "__main__":
    main()
