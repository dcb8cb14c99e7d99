"""What the crop windows (features/windows.py) and the crop test do for the dev set's crops and
tilts, stage by stage.

    python3 eval/windows.py [/tmp/devset]

For every crop, tilt and big_crop copy of a make_benchmark.py set, against its original: is one
of the original's codes (full frame, centre window, and the crop windows) within the search
radius of the copy's indexed codes (its canonical one and its ambiguous alternatives)?  Would
the crop test accept the pair, in the orientation it picks, and would the frame guard let it
stand?  ``eval/crops.py`` does the same on photos outside the dev set.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from neardup.config import ScanOptions
from neardup.features.extract import extract
from neardup.features.windows import window_codes
from neardup.verify.rules import crop_match, crop_variant, framed_crop


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/devset")
    radius, bar = ScanOptions().radius, ScanOptions().crop_ncc
    rows = list(csv.DictReader(open(folder / "truth.csv")))
    original = {r["group"]: r["file"] for r in rows if r["role"] == "original"}
    for edit in ("crop", "tilt", "big_crop"):
        candidate = passed = kept = total = 0
        for r in rows:
            if r["transform"] != edit:
                continue
            fa = extract((folder / "images" / original[r["group"]]).read_bytes())
            fb = extract((folder / "images" / r["file"]).read_bytes())
            indexed = np.array([fb.p64[fb.canon]] + [fb.p64[v] for v in range(8) if fb.alt_mask >> v & 1], np.uint64)
            codes = np.concatenate([[fa.p64[fa.canon], fa.c64[fa.canon]], window_codes(fa.sig[None])[0]]).astype(np.uint64)
            found = int(np.bitwise_count(codes[:, None] ^ indexed[None]).min()) <= radius
            variant = crop_variant(fa.sig[None], fb.sig[None], fa.p64[None], fb.p64[None])
            match = crop_match(fa.sig[None], fb.sig[None], variant)
            ok = bool(match.ncc[0] >= bar)
            stands = ok and not bool(framed_crop(fa.sig[None], fb.sig[None], variant, match)[0])
            candidate += found
            passed += ok
            kept += found and stands
            total += 1
        print(f"{edit:9s} n={total}: a candidate {candidate}; crop test would pass {passed}; "
              f"both, and the frame guard lets it stand {kept}")


if __name__ == "__main__":
    main()
