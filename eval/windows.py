"""What the side windows (features/windows.py) add to the candidate search for crops and tilts.

    python3 eval/windows.py [/tmp/devset]

For every crop and tilt copy of a make_benchmark.py set, against its original: is any of the
original's codes (full frame, centre window, and with the windows, the eight side windows)
within the search radius of the copy's full-frame code?  And would the crop test accept it?
Then the crops found with the four corner windows only, and with the four edge windows only.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from neardup.config import ScanOptions
from neardup.features import windows
from neardup.features.extract import extract
from neardup.features.windows import window_codes
from neardup.verify.rules import VerifyParams, crop_ncc_batch


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/devset")
    radius, crop_ncc = ScanOptions().radius, VerifyParams().crop_ncc
    rows = list(csv.DictReader(open(folder / "truth.csv")))
    original = {r["group"]: r["file"] for r in rows if r["role"] == "original"}
    for edit in ("crop", "tilt", "big_crop"):
        before = after = passed = total = 0
        for r in rows:
            if r["transform"] != edit:
                continue
            fa = extract((folder / "images" / original[r["group"]]).read_bytes())
            fb = extract((folder / "images" / r["file"]).read_bytes())
            code = fb.p64[fb.canon]
            old = np.array([fa.p64[fa.canon], fa.c64[fa.canon]], np.uint64)
            new = np.concatenate([old, window_codes(fa.sig[None], np.array([fa.canon]))[0]])
            before += int(np.bitwise_count(old ^ code).min()) <= radius
            after += int(np.bitwise_count(new ^ code).min()) <= radius
            variant = np.array([int(np.bitwise_count(fa.p64[:1] ^ fb.p64).argmin())])
            passed += float(crop_ncc_batch(fa.sig[None], fb.sig[None], variant)[0]) >= crop_ncc
            total += 1
        print(f"{edit:9s} n={total}: a candidate without windows {before}, with {after}; crop test would pass {passed}")
    # which windows earn their queries: the corners alone, the edges alone (crops)
    every = windows.WINDOW_OFFSETS
    for name, subset in (("4 corner windows", ((0, 0), (0, 4), (4, 0), (4, 4))),
                         ("4 edge windows", ((0, 2), (2, 0), (2, 4), (4, 2)))):
        windows.WINDOW_OFFSETS = subset
        found = 0
        for r in rows:
            if r["transform"] == "crop":
                fa = extract((folder / "images" / original[r["group"]]).read_bytes())
                fb = extract((folder / "images" / r["file"]).read_bytes())
                codes = np.concatenate([[fa.p64[fa.canon], fa.c64[fa.canon]], window_codes(fa.sig[None], np.array([fa.canon]))[0]])
                found += int(np.bitwise_count(codes.astype(np.uint64) ^ fb.p64[fb.canon]).min()) <= radius
        print(f"crop with {name} only: {found}")
    windows.WINDOW_OFFSETS = every


if __name__ == "__main__":
    main()
