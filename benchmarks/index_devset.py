"""A saved index of the dev set's originals and distractors, queried with its copies and negatives.

    python3 benchmarks/index_devset.py [--mode fast|thorough] [--devset /tmp/devset]

The dev set (benchmarks/devset.py builds it) is split by its truth file: originals, distractors
and hard negatives go into the collection (hard-linked), the 1,012 copies are the queries.  Each
query should find its original (recall by tier and edit, as the scan is scored), and no query
may match a file of another group (precision).  Prints build and query times.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import neardup
from neardup.embed.model import default_model_spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devset", type=Path, default=Path("/tmp/devset"))
    ap.add_argument("--mode", choices=["fast", "thorough"], default="fast")
    a = ap.parse_args()
    rows = list(csv.DictReader((a.devset / "truth.csv").open()))
    group_of = {r["file"]: r["group"] for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        coll, queries, index = Path(tmp) / "coll", Path(tmp) / "queries", Path(tmp) / "index"
        coll.mkdir()
        queries.mkdir()
        for r in rows:
            os.link(a.devset / "images" / r["file"], (queries if r["role"] == "copy" else coll) / r["file"])
        if a.mode == "thorough":  # the model is exported once beforehand, not timed
            (index / "cache").mkdir(parents=True)
            (index / "cache" / "models").symlink_to(Path(default_model_spec(None).path).parent)
        t = time.perf_counter()
        idx = neardup.Index.build([str(coll)], index, mode=a.mode)
        build = time.perf_counter() - t
        t = time.perf_counter()
        res = neardup.Index.open(index).query([str(queries)])
        query = time.perf_counter() - t
        shutil.rmtree(index)
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    false = 0
    by_name = {r["file"]: r for r in rows}
    for x in res.queries:
        me = by_name[Path(x.query).name]
        names = {Path(m.path).name for m in x.matches}
        false += sum(1 for n in names if group_of[n] != me["group"])
        found = any(by_name[n]["role"] == "original" and group_of[n] == me["group"] for n in names)
        for key in (f"tier {me['tier']}", f"edit {me['transform'].split(':')[0]}"):
            hits[key][0] += found
            hits[key][1] += 1
    print(f"{a.mode}: collection {idx.files} files, build {build:.1f} s; {len(res.queries)} queries in {query:.1f} s "
          f"({len(res.queries) / query:.0f}/s); matches {res.stats['matches']}, of another group {false}")
    for key in sorted(hits):
        got, n = hits[key]
        print(f"  {key:24s} {got / n:.3f} (n={n})")


if __name__ == "__main__":
    main()
