"""Peak PSS of a command's whole process tree (the command and every descendant), sampled.

    python3 benchmarks/tree_pss.py [--every 5] [--trace FILE] -- python3 benchmarks/scale.py --n 1000000 --crop-pairs

Runs the command, reads ``/proc/PID/smaps_rollup`` of it and of all its descendants every
``--every`` seconds, and prints, after the command's own output, the largest total seen and its
time.  PSS shares pages between processes fairly (a worker's pages inherited from the driver are
not counted twice).  Samples can miss a spike shorter than the interval.  Linux only.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return out


def _tree_pss_mb(root: int) -> float:
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
        todo += _children(pid)
    return total / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--trace", type=Path, default=None,
                    help="also write every sample here: seconds since the epoch, tree PSS MB (to line up with a log)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    peak, at = 0.0, 0.0
    trace = a.trace.open("w") if a.trace else None
    while proc.poll() is None:
        now = _tree_pss_mb(proc.pid)
        if trace is not None:
            trace.write(f"{time.time():.1f} {now:.0f}\n")
            trace.flush()
        if now > peak:
            peak, at = now, time.perf_counter() - start
        time.sleep(a.every)
    if trace is not None:
        trace.close()
    print(f"process tree peak PSS {peak:,.0f} MB at {at:,.0f} s (sampled every {a.every:g} s); exit {proc.returncode}")


if __name__ == "__main__":
    main()
