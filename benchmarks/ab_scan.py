"""Two checkouts' scans of one folder, alternating: this one and another (a git worktree).

    git worktree add /tmp/wt_old 0ed8f8d      # the commit to compare with (build its C loops: see below)
    python3 benchmarks/ab_scan.py /tmp/mosaic10k --other /tmp/wt_old/src [--rounds 3]

Each round runs ``python -m neardup scan FOLDER --cache FRESH -q`` once with the other checkout's
``src`` first on ``PYTHONPATH``, then once with this one, each a fresh process on a fresh cache,
and prints every wall time and the per-stage seconds of ``results.json``; then the medians and
their ratio.  The machine's speed drifts by the minute, which is why the two alternate.  A
worktree has no compiled loops of its own until they are built there (``pip install -e`` in a
separate environment, or copying this checkout's ``.so`` files where the C sources are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _scan(folder: Path, src: str) -> tuple[float, dict[str, float], int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        env = {**os.environ, "PYTHONPATH": src}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "neardup", "scan", str(folder), "--cache", str(Path(tmp) / "cache"), "-o",
                        str(out), "-q"], env=env, cwd=tmp, check=False, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        stats = json.loads(out.read_text())["stats"]
    return wall, {k: v["seconds"] for k, v in stats["stages"].items()}, int(stats["candidate_pairs"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--other", required=True, help="the other checkout's src folder")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    walls: dict[str, list[float]] = {"other": [], "this": []}
    for _ in range(a.rounds):
        for name, src in (("other", a.other), ("this", here)):
            wall, stages, pairs = _scan(a.folder, src)
            walls[name].append(wall)
            print(f"{name}: {wall:.2f} s, {pairs:,} candidate pairs, stages " +
                  ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    other, this = statistics.median(walls["other"]), statistics.median(walls["this"])
    print(f"medians: other {other:.2f} s, this {this:.2f} s: {other / this:.2f}x")


if __name__ == "__main__":
    main()
