"""Check that a restructuring changed no result: scan fixed collections, write each results.json
with sorted keys and without timings, and compare with a saved reference.

    python3 benchmarks/same_results.py save /tmp/ref        # on the commit before
    python3 benchmarks/same_results.py check /tmp/ref       # on the commit after: exit 1 on a difference

Collections: the dev set (``benchmarks/devset.py --seed 1`` builds /tmp/devset), fast and, with
``--thorough``, thorough mode; imagededup's labelled test set from ../shared/bench; and a
10,000-image scale folder (``benchmarks/scale.py --n 10000`` builds it) when present.  Every scan
runs with a fresh cache.  Only what depends on the machine or the moment is dropped: per-stage
seconds and peak RSS, the scan's working folder, and how many images were decoded rather than
found in the cache (a worker skips decoding a content the driver cached a moment before, so
with exact copies in one run that split depends on timing; it did so before any restructuring).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import neardup

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"
COLLECTIONS = {
    "devset-fast": (Path("/tmp/devset/images"), "fast"),
    "devset-thorough": (Path("/tmp/devset/images"), "thorough"),
    "imagededup-fast": (SHARED / "real" / "imagededup", "fast"),
    "scale10k-fast": (Path("/tmp/ndscale/v2-10000"), "fast"),
}


def canonical(result: neardup.ScanResult) -> str:
    d = result.to_dict()
    for moment in ("stages", "decoded", "from_cache"):
        d["stats"].pop(moment, None)
    d.get("scan", {}).pop("cwd", None)
    return json.dumps(d, sort_keys=True, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["save", "check"])
    ap.add_argument("ref", type=Path)
    ap.add_argument("--thorough", action="store_true", help="also thorough mode on the dev set (slower)")
    args = ap.parse_args()
    args.ref.mkdir(parents=True, exist_ok=True)
    differ = []
    for name, (folder, mode) in COLLECTIONS.items():
        if mode == "thorough" and not args.thorough:
            continue
        if not folder.is_dir():
            print(f"{name}: {folder} not present, skipped")
            continue
        with tempfile.TemporaryDirectory() as cache:
            got = canonical(neardup.scan([str(folder)], cache=cache, mode=mode))
        ref = args.ref / f"{name}.json"
        if args.what == "save":
            ref.write_text(got)
            print(f"{name}: saved {len(got):,} characters")
        elif not ref.exists():
            print(f"{name}: no reference at {ref}")
        elif ref.read_text() != got:
            (args.ref / f"{name}.new.json").write_text(got)
            differ.append(name)
            print(f"{name}: DIFFERS (see {args.ref / (name + '.new.json')})")
        else:
            print(f"{name}: identical")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
