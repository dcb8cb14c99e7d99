"""Which contained-view size finds a picture inside its container (issue 18): the rank of each
inset's original among all images, by the best cosine of the inset's regions (embed/regions.py)
with every image's view at ``--sides`` pixels.

    python3 eval/regions.py /tmp/devset [--edit inset] [--sides 112,128,160,224]

A picture inset at 40-75% of its container's side appears, to a 224-pixel pass, at about
90-170 pixels; CNN features are not scale invariant, so its own view at a similar size should
match best.  Prints, per side, how many originals rank first, in the top 3 and the top 10
(other copies of the same original are left out of the ranking).  Needs the [cnn] extra and
the default model (exported on first use).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from neardup.embed.model import Embedder, default_model_spec
from neardup.embed.regions import gem, pool_regions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--edit", default="inset")
    ap.add_argument("--sides", default="112,128,160,224")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.root / "truth.csv")))
    files = [r["file"] for r in rows]
    at = {f: i for i, f in enumerate(files)}
    group = {r["file"]: r["group"] for r in rows}
    original = {r["group"]: r["file"] for r in rows if r["role"] == "original"}
    emb = Embedder(default_model_spec(None), threads=2)
    assert emb.map_output is not None, "the default model has a map output"
    images = [np.asarray(Image.open(a.root / "images" / f).convert("RGB")) for f in files]

    def run(side: int, out: int) -> np.ndarray:
        return np.concatenate([emb._run(images[s : s + 16], side)[out] for s in range(0, len(images), 16)])  # noqa: SLF001

    regions = pool_regions(run(224, emb.map_output))
    copies = [f for f in files if [r for r in rows if r["file"] == f][0]["transform"] == a.edit]
    mates = defaultdict(list)
    for f in files:
        mates[group[f]].append(at[f])
    for side in (int(s) for s in a.sides.split(",")):
        views = gem(run(side, emb.map_output))
        views /= np.linalg.norm(views, axis=1, keepdims=True)
        ranks = []
        for f in copies:
            x, o = at[f], at[original[group[f]]]
            score = (regions[x] @ views.T).max(axis=0)
            score[[m for m in mates[group[f]] if m != o]] = -9.0
            ranks.append(int((score > score[o]).sum()) + 1)
        r = np.array(ranks)
        print(f"contained view at {side:>3} px: {a.edit} n={len(r)}, original first {(r == 1).sum()}, "
              f"top 3 {(r <= 3).sum()}, top 10 {(r <= 10).sum()}, median rank {np.median(r):.0f}")


if __name__ == "__main__":
    main()
