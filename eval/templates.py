"""Shared frames and look-alikes (issue 18): false pairs, planted copies found, candidate pairs.

    python3 eval/templates.py [--templates 30] [--per 8] [--hubs 400] [--seed 5] [--mode fast|thorough]

Builds a seeded population with ``tests/populations.py`` and scans it with a fresh cache:

* ``--templates`` app-like frames (a picture slot covering 8-60% of the canvas: frame shares
  0.40-0.92, beyond the 0.85 the issue names), ``--per`` different photographs in each, every
  one a JPEG at q70-92 with its own small label (a count, as screenshots have);
* one planted copy of the first image of every template (re-saved, resized, captioned or
  sharpened) that must be found, and found only with its source;
* ``--hubs`` look-alikes: a patch of 5-40% of the side (a smooth random texture) on a plain
  background, 2% of them with a resized q60 copy.

Prints the false pairs (two different pictures grouped), the planted copies found, and the
candidate pairs per image (linear in the population when it stays flat as it grows).
Photographs come from BSDS500 in ../shared/bench (read, never copied); textures stand in
when it is missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import neardup  # noqa: E402
from populations import copy_of, framed, hub, jpeg_bytes, make_frame, pictures, texture  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "photos" / "bsds500" / "test"


#: picture id -> the photo it shows (templates may show one photo each: two frames around one
#: photo are not copies of each other, but both contain it; counted apart)
photo_of: dict[str, int] = {}
#: template number -> the share of the canvas its frame covers
frame_share_of: dict[int, float] = {}


def build(out: Path, *, templates: int, per: int, hubs: int, seed: int) -> dict[str, str]:
    """Write the population under ``out``; returns file name -> picture id (copies share it)."""
    rng = np.random.default_rng(seed)
    pool = [Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))] if PHOTOS.is_dir() else []
    truth: dict[str, str] = {}
    photo_of.clear()

    def write(name: str, data: bytes, picture: str) -> None:
        (out / name).write_bytes(data)
        truth[name] = picture

    frame_share_of.clear()
    for t in range(templates):
        frame_share_of[t] = float(rng.uniform(0.40, 0.92))
        frame = make_frame(seed * 1000 + t, frame_share=frame_share_of[t])
        for k, pic in enumerate(pictures(pool, rng, per)):
            im = framed(frame, pic, label=f"{int(rng.integers(1, 9999))} likes")
            write(f"t{t:03d}_{k:02d}.jpg", jpeg_bytes(im, int(rng.integers(70, 93))), f"t{t}_{k}")
            photo_of[f"t{t}_{k}"] = next((i for i, p in enumerate(pool) if p is pic), -1 - len(photo_of))
            if k == 0:
                copy, q, kind = copy_of(im, rng)
                write(f"t{t:03d}_{k:02d}_{kind}.jpg", jpeg_bytes(copy, q), f"t{t}_{k}")
    # a hub's patch is a texture: a patch cut from a photo that some template shows would be a
    # true "contains" pair, and two patches of one photo may overlap
    for h in range(hubs):
        im = hub(rng, texture(rng, (240, 240)))
        write(f"h{h:05d}.jpg", jpeg_bytes(im, 85), f"h{h}")
        if rng.random() < 0.02:
            small = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.LANCZOS)
            write(f"h{h:05d}_copy.jpg", jpeg_bytes(small, 60), f"h{h}")
    return truth


def score(result: neardup.ScanResult, truth: dict[str, str]) -> dict[str, int]:
    false = found = same_photo = 0
    for g in result.groups:
        names = [Path(m).name for m in g.members]
        for x, y in combinations(names, 2):
            if truth[x] == truth[y]:
                found += 1
            elif photo_of.get(truth[x], -1) == photo_of.get(truth[y], -2):
                same_photo += 1
            else:
                false += 1
                stages = sorted({p.stage for p in g.pairs if {Path(p.a).name, Path(p.b).name} == {x, y}})
                share = frame_share_of.get(int(x[1:4]), float("nan")) if x.startswith("t") else float("nan")
                print(f"  false pair {x} {y} ({', '.join(stages) or 'joined through the group'}; frame share {share:.2f})")
    planted_names = [n for n in truth if n.count("_") > 1 or n.endswith("_copy.jpg")]
    planted = len(planted_names)
    together = {frozenset((Path(x).name, Path(y).name)) for g in result.groups for x, y in combinations(g.members, 2)}
    for n in planted_names:
        source = next(m for m in truth if truth[m] == truth[n] and m != n)
        if frozenset((n, source)) not in together:
            print(f"  planted copy missed: {n} (of {source})")
    return {"false_pairs": false, "same_photo_in_two_frames": same_photo, "planted": planted, "planted_found": found,
            "candidate_pairs": int(result.stats["candidate_pairs"]), "images": len(truth)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--templates", type=int, default=30)
    ap.add_argument("--per", type=int, default=8)
    ap.add_argument("--hubs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--mode", choices=("fast", "thorough"), default="fast")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        truth = build(folder, templates=a.templates, per=a.per, hubs=a.hubs, seed=a.seed)
        result = neardup.scan([str(folder)], cache=Path(tmp) / "cache", mode=a.mode)
        got = score(result, truth)
    print(f"{a.mode}: {got['images']} images, false pairs {got['false_pairs']} (and one photo in two frames "
          f"{got['same_photo_in_two_frames']}), planted copies found "
          f"{got['planted_found']}/{got['planted']}, candidate pairs {got['candidate_pairs']} "
          f"({got['candidate_pairs'] / got['images']:.2f} per image)")


if __name__ == "__main__":
    main()
