"""Accuracy and speed of `neardup scan` on the development benchmark, cold cache.

    python3 benchmarks/devset.py [--seed 1] [--out /tmp/devset] [--radius 8] [--mode thorough]

Builds the labelled set with ../shared/bench/make_benchmark.py if it is missing, scans it with
an empty cache, scores it with neardup's evaluator and prints images/s, per-stage seconds and
peak RSS, pair precision/recall and the per-edit copy recall.  In thorough mode the model is
exported once into the per-user cache beforehand (that one-time step is not timed); features,
embeddings and local features all start cold.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import neardup
from neardup.evaluate import format_scores, load_truth, score_file

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/devset"))
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--mode", choices=["fast", "thorough"], default="fast")
    ap.add_argument("--model", type=Path, default=None, help="thorough: another ONNX model (benchmarks/quantise.py)")
    a = ap.parse_args()
    if not (a.out / "truth.csv").exists():
        subprocess.run([sys.executable, str(BENCH / "make_benchmark.py"), "--photos", str(BENCH / "photos" / "bsds500"),
                        "--out", str(a.out), "--seed", str(a.seed)], check=True)
    with tempfile.TemporaryDirectory() as cache:
        if a.mode == "thorough":
            from neardup.embed.model import default_model_spec

            (Path(cache) / "models").symlink_to(Path(default_model_spec(None).path).parent)
        t = time.perf_counter()
        extra = {"model": str(a.model)} if a.model is not None else {}
        r = neardup.scan([str(a.out / "images")], cache=cache, radius=a.radius, workers=a.workers, mode=a.mode,
                         **extra)
        wall = time.perf_counter() - t
    res = Path(tempfile.gettempdir()) / "neardup-devset-results.json"
    res.write_text(r.to_json())
    s = score_file(load_truth(str(a.out / "truth.csv")), str(res))
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}")
    print(f"images {r.stats['images']}, wall {wall:.2f} s, {r.stats['images'] / wall:.0f} images/s (cold cache)")
    print(json.dumps(r.stats["stages"]))
    print(f"candidate pairs {r.stats['candidate_pairs']}, verified {r.stats['verified_pairs']}, groups {r.stats['groups']}"
          + (f", embedding pairs {r.stats['embedding_pairs']}, local checks {r.stats['local_checks']}"
             if a.mode == "thorough" else ""))
    print(format_scores(s))


if __name__ == "__main__":
    main()
