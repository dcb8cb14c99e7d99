"""Peak resident memory of a fast scan by stage, anonymous and file-backed apart.

    python3 benchmarks/stage_memory.py /tmp/ndscale/v2-100000

``neardup.scan`` runs with a fresh cache while a thread samples ``/proc/self/status`` every
0.2 s; the stage is the one the progress callback last named (so a stage's peak may include
the start of the next).  File-backed memory is the store's pages mapped into the process;
anonymous memory is everything the scan allocated.  Linux only.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import time

import neardup


def main() -> None:
    root = sys.argv[1]
    peak: dict[str, tuple[int, int]] = {}
    stage = ["start"]

    def sample() -> None:
        while True:
            status = open("/proc/self/status").read()
            anon = int(re.search(r"RssAnon:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]
            mapped = int(re.search(r"RssFile:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]
            was = peak.get(stage[0], (0, 0))
            peak[stage[0]] = (max(was[0], anon), max(was[1], mapped))
            time.sleep(0.2)

    def progress(name: str, n: int, total: int | None) -> None:
        stage[0] = name

    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        r = neardup.scan([root], cache=cache, progress=progress)
        wall = time.perf_counter() - t
    print(f"wall {wall:.1f} s; peak RSS by stage (MB): "
          f"{ {k: v['peak_rss_mb'] for k, v in r.stats['stages'].items()} }")
    print("sampled peaks (anonymous MB, file-backed MB) by progress stage:", peak)


if __name__ == "__main__":
    main()
