"""Crops and small tilts in fast mode (issue 18, part 3): which crop windows find them, what the
crop test makes of them, and what unrelated pairs score.

    python3 eval/crops.py [--per 4] [--seed 7] [--negatives 150]

A seeded population built from photographs *outside* the dev set (Kodak, the PyPI photos, the
INRIA/UKBench/DISC samples and imagededup's base images in ../shared/bench; read, never
copied): each photo gets ``--per`` crops of 72-97% per axis, independently (the aspect
changes), anywhere in the frame, some mirrored, and ``--per`` tilts of 1.5-9 degrees trimmed of
their corners, each re-saved as a JPEG at q60-95.  A wider range than the dev set's 82-95%
crops and 2-8 degree tilts, on other photos.

Prints, per family of windows (features/windows.py), with the 12 tilted frames: the crops and
tilts whose full-frame code is within the search radius of one of the original's codes, and the queries an image costs.
Then the crop test (verify/rules.py) on every copy against its original: correlations at the
quantiles, and the share at or above the bar; and the same correlations for every pair of
unrelated photos (``--negatives`` BSDS photos plus the pool), with how many of them the windows
would make candidates, and how many the tilt test accepts.  The crop bar sits below the copies and above every unrelated pair.
"""

from __future__ import annotations

import argparse
import io
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image

from neardup.config import ScanOptions
from neardup.features.extract import extract
from neardup.features.orient import orient_layouts
from neardup.features.windows import WINDOWS, tilt_codes, window_codes, window_family
from neardup.verify.rules import crop_explains, crop_ncc_batch, crop_variant, framed_crop, tilt_accepted

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
POOL = [BENCH / "real" / "kodak24" / "color500_ffdnet_crops", BENCH / "photos" / "pypi", BENCH / "real" / "nd_samples",
        BENCH / "real" / "imagededup" / "base_images"]
EXT = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def photos(dirs: list[Path], limit: int | None = None) -> list[Image.Image]:
    out = []
    for p in sorted(q for d in dirs if d.exists() for q in d.rglob("*") if q.suffix.lower() in EXT):
        try:
            im = Image.open(p).convert("RGB")
        except OSError:
            continue
        if min(im.size) < 128:
            continue
        im.thumbnail((1024, 1024))
        out.append(im)
        if limit and len(out) >= limit:
            break
    return out


def jpeg(im: Image.Image, q: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return buf.getvalue()


def crop(im: Image.Image, r: random.Random) -> tuple[Image.Image, float]:
    """A crop and its smaller side share."""
    fx, fy = r.uniform(0.72, 0.97), r.uniform(0.72, 0.97)
    w, h = int(im.width * fx), int(im.height * fy)
    x, y = r.randint(0, im.width - w), r.randint(0, im.height - h)
    out = im.crop((x, y, x + w, y + h))
    return (out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if r.random() < 0.2 else out), min(fx, fy)


def tilt(im: Image.Image, r: random.Random) -> Image.Image:
    a = r.uniform(1.5, 9) * r.choice([-1, 1])
    out = im.rotate(a, resample=Image.Resampling.BICUBIC, expand=False)
    k = math.sin(math.radians(abs(a))) * r.uniform(1.0, 1.15)  # trimmed at least of the exposed corners
    dx, dy = int(im.height * k) + 1, int(im.width * k) + 1
    return out.crop((dx, dy, im.width - dx, im.height - dy))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--negatives", type=int, default=150)
    a = ap.parse_args()
    r = random.Random(a.seed)
    radius, bar = ScanOptions().radius, ScanOptions().crop_ncc
    pool = photos(POOL)
    originals = [extract(jpeg(im, 92)) for im in pool]
    copies: dict[str, list[tuple[int, object]]] = {"crop": [], "tilt": []}
    share = []
    for i, im in enumerate(pool):
        for _ in range(a.per):
            cut, smaller = crop(im, r)
            share.append(smaller)
            copies["crop"].append((i, extract(jpeg(cut, r.randint(60, 95)))))
            copies["tilt"].append((i, extract(jpeg(tilt(im, r), r.randint(60, 95)))))
    print(f"{len(pool)} photos, {a.per} crops and {a.per} tilts each (seed {a.seed})")

    families = {"9 square (28), before": window_family((28,)), "36: sides 26, 29": window_family((26, 29)),
                "36: sides 27, 30": window_family((27, 30)), "16: sides 26, 29, 2 places": window_family((26, 29), 2),
                "81: sides 26, 28, 30 (default)": WINDOWS}
    sig = np.stack([f.sig for f in originals])
    aspects = np.array([f.width / f.height for f in originals])
    for name, fam in families.items():
        codes = np.hstack([window_codes(sig, fam), tilt_codes(sig, aspects)])
        found = {}
        for edit, items in copies.items():
            hit = np.zeros(len(items), bool)
            for k, (i, f) in enumerate(items):
                mine = np.array([f.p64[f.canon]] + [f.p64[v] for v in range(8) if f.alt_mask >> v & 1], np.uint64)
                own = np.concatenate([[originals[i].p64[originals[i].canon], originals[i].c64[originals[i].canon]], codes[i]])
                hit[k] = int(np.bitwise_count(own.astype(np.uint64)[:, None] ^ mine[None]).min()) <= radius
            found[edit] = f"{int(hit.sum())}/{len(items)}"
            if edit == "crop":
                big = np.array(share) >= 0.80
                found["crop80"] = f"{int(hit[big].sum())}/{int(big.sum())}"
        print(f"  windows {name:28s} queries/image {len(fam) + 2:3d}: crops {found['crop']} "
              f"(>= 80% a side: {found['crop80']}), tilts {found['tilt']}")

    bars = (0.92, 0.93, 0.94, 0.945, 0.95, 0.955)
    for edit, items in copies.items():
        sa = np.stack([originals[i].sig for i, _ in items])
        sb = np.stack([f.sig for _, f in items])
        pa = np.stack([originals[i].p64 for i, _ in items])
        pb = np.stack([f.p64 for _, f in items])
        v = crop_variant(sa, sb, pa, pb)
        ncc = crop_ncc_batch(sa, sb, v)
        passed = ncc >= bar
        beaten = passed & ~crop_explains(sa, sb, v, ncc)  # a crop must fit better than the whole frame
        print(f"  {edit}s at or above the bar that the whole frame fits as well: {int(beaten.sum())}")
        whole = np.array([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in
                          zip(sa.astype(np.float64), orient_layouts(sb.astype(np.float32), v).astype(np.float64))])
        gain = (ncc - whole)[passed & ~beaten]
        print(f"  how much better than the whole frame the crop fits, {edit}s passing: 1/5/50% "
              f"{np.quantile(gain, [0.01, 0.05, 0.5]).round(4).tolist() if len(gain) else []}, "
              f"under 0.01: {int((gain < 0.01).sum())}, under 0.02: {int((gain < 0.02).sum())} of {len(gain)}")
        passed &= ~beaten
        if edit == "tilt":
            asp_a = np.array([originals[i].width / originals[i].height for i, _ in items])
            asp_b = np.array([f.width / f.height for _, f in items])
            tilt_ok, _ = tilt_accepted(sa[~passed], sb[~passed], asp_a[~passed], asp_b[~passed], pa[~passed], pb[~passed], bar)
            print(f"  tilt test on the tilts the crop test refuses: {int(tilt_ok.sum())} of {int((~passed).sum())} accepted; "
                  f"tilts accepted either way {(passed.sum() + tilt_ok.sum()) / len(passed):.3f}")
        framed = framed_crop(sa[passed], sb[passed], v[passed])
        q = np.quantile(ncc, [0.05, 0.1, 0.25, 0.5])
        big = f" (>= 80% a side: {passed[np.array(share) >= 0.80].mean():.3f})" if edit == "crop" else ""
        print(f"  crop test, {edit}s: 5/10/25/50% {q.round(3).tolist()}, >= {bar}: {passed.mean():.3f}{big}; "
              f"refused by the frame guard after: {int(framed.sum())}")
        print("    passing at each bar: " + ", ".join(f"{x}: {(ncc >= x).mean():.3f}" for x in bars))

    neg = photos([BENCH / "photos" / "bsds500" / "test"], a.negatives) + pool
    feats = originals + [extract(jpeg(im, 92)) for im in neg[: len(neg) - len(pool)]]
    n = len(feats)
    ia, ib = np.triu_indices(n, 1)
    sg = np.stack([f.sig for f in feats])
    p64 = np.stack([f.p64 for f in feats])
    v = crop_variant(sg[ia], sg[ib], p64[ia], p64[ib])
    ncc = crop_ncc_batch(sg[ia], sg[ib], v)
    win = window_codes(sg)
    full = p64[np.arange(n), [f.canon for f in feats]]
    cand = (np.bitwise_count(win[ia] ^ full[ib, None]).min(axis=1) <= radius) | (
        np.bitwise_count(win[ib] ^ full[ia, None]).min(axis=1) <= radius)
    for x in bars:
        over = np.flatnonzero((ncc >= x) & crop_explains(sg[ia], sg[ib], v, ncc))
        kept = over[~framed_crop(sg[ia[over]], sg[ib[over]], v[over])] if len(over) else over
        print(f"  unrelated pairs at or above {x}: {len(over)}, of them past the frame guard {len(kept)}")
    aspect = np.array([f.width / f.height for f in feats])
    refused = np.flatnonzero(ncc < bar)
    tilt_ok, _ = tilt_accepted(sg[ia[refused]], sg[ib[refused]], aspect[ia[refused]], aspect[ib[refused]],
                               p64[ia[refused]], p64[ib[refused]], bar)
    print(f"  unrelated pairs the crop test refuses that the tilt test accepts: {int(tilt_ok.sum())} of {len(refused)}")
    q = np.quantile(ncc, [0.5, 0.99, 0.999])
    print(f"  unrelated pairs: {len(ncc)}; crop test median/99%/99.9% {q.round(3).tolist()}, max {ncc.max():.3f}; "
          f">= {bar}: {int((ncc >= bar).sum())}; window candidates {int(cand.sum())} "
          f"(their max {ncc[cand].max() if cand.any() else float('nan'):.3f})")


if __name__ == "__main__":
    main()
