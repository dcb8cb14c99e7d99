"""Where thorough mode loses insets (issue 18): candidates or verification?

    python3 eval/insets.py /tmp/devset [--edit inset]

For every copy of ``--edit`` in a labelled set (``truth.csv`` as make_benchmark.py writes it)
and its original, prints:

* whether the local check (``verify.local.match_pair``, default ``LocalParams``) accepts the
  pair when it is given it: the verification's share;
* the rank of the original among all images by global embedding cosine (the k-NN candidates'
  view of the pair), and by the best of 22 regional embeddings of the copy (crops of 50-70% of
  its frame, each embedded on its own): what a regional ("contains") query would see.

The regional embeddings here are computed by embedding crops, 22 forward passes an image: an
experiment to size the idea, not how a product would make them (one pass, pooled regions).
Needs the [cnn] extra and the exported model in the per-user cache.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from neardup.embed.knn import KnnParams
from neardup.embed.model import Embedder, default_model_spec
from neardup.verify.local import LOCAL_SIDE, LocalParams, local_features, match_pair

INPUT = 224
#: (share of each side, places along each axis) of the regional crops
REGIONS = ((0.5, 3), (0.6, 3), (0.7, 2))


def pairs_of(root: Path, edit: str) -> list[tuple[str, str]]:
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    with open(root / "truth.csv") as f:
        for r in csv.DictReader(f):
            groups[r["group"]].append(r)
    out = []
    for members in groups.values():
        orig = [r["file"] for r in members if r["role"] == "original"]
        out += [(orig[0], r["file"]) for r in members if orig and r["transform"] == edit]
    return out


def upright(path: Path, side: int) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    s = side / max(im.size)
    if s < 1:
        im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
    return np.asarray(im)


def regions(im: Image.Image) -> list[np.ndarray]:
    w, h = im.size
    out = []
    for share, places in REGIONS:
        rw, rh = int(w * share), int(h * share)
        for i in range(places):
            for j in range(places):
                x, y = round(i * (w - rw) / (places - 1)), round(j * (h - rh) / (places - 1))
                out.append(np.asarray(im.crop((x, y, x + rw, y + rh)).resize((INPUT, INPUT))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--edit", default="inset")
    a = ap.parse_args()
    images = a.root / "images"
    files = sorted(p.name for p in images.iterdir())
    at = {f: i for i, f in enumerate(files)}
    embedder = Embedder(default_model_spec(None), threads=2)
    every = np.concatenate([
        embedder.embed([np.asarray(Image.open(images / f).convert("RGB").resize((INPUT, INPUT)))
                        for f in files[s : s + 64]]).astype(np.float32)
        for s in range(0, len(files), 64)])
    params = LocalParams()
    accepted, global_rank, regional_rank = [], [], []
    for orig, copy in pairs_of(a.root, a.edit):
        o, q = at[orig], at[copy]
        ev = match_pair(local_features(upright(images / orig, LOCAL_SIDE)),
                        local_features(upright(images / copy, LOCAL_SIDE)), params)
        accepted.append(ev.accepted(params))
        sims = every @ every[q]
        sims[q] = -9.0
        global_rank.append(int((sims > sims[o]).sum()) + 1)
        reg = embedder.embed(regions(Image.open(images / copy).convert("RGB"))).astype(np.float32) @ every.T
        best = reg.max(axis=0)
        best[q] = -9.0
        regional_rank.append(int((best > best[o]).sum()) + 1)
        print(f"{orig} {copy}: cosine {sims[o]:.3f}, rank {global_rank[-1]} (regional {regional_rank[-1]}, "
              f"{best[o]:.3f}); local check {'accepts' if accepted[-1] else 'refuses'} "
              f"({ev.inliers} inliers, ncc {ev.ncc:.3f})")
    g, r = np.array(global_rank), np.array(regional_rank)
    n = len(g)
    print(f"{a.edit}: {n} pairs; the local check accepts {sum(accepted)} of {n} when given them; "
          f"global cosine >= the k-NN threshold {KnnParams().threshold}: see above")
    print(f"  original's rank by global embedding: 1st {(g == 1).sum()}, top-3 {(g <= 3).sum()}, "
          f"top-10 {(g <= 10).sum()}, median {np.median(g):.0f}")
    print(f"  by the best regional embedding:     1st {(r == 1).sum()}, top-3 {(r <= 3).sum()}, "
          f"top-10 {(r <= 10).sum()}, median {np.median(r):.0f}")


if __name__ == "__main__":
    main()
