"""Pictures shown inside other pictures (issue 18): does thorough mode find the container as a
copy of the picture, name the stage ``contains``, keep the picture and not its container; and
does it leave crops (the one case where the larger image is the original) alone?

    python3 eval/contains.py [--per 2] [--seed 11] [--out /tmp/contains-pop] [--keep]

A seeded population built from photographs *outside* the dev set (Kodak, the PyPI photos and
imagededup's base images in ../shared/bench; read, never copied; not the INRIA/UKBench/DISC
samples, which hold other shots and a copy of one another).  Each photo is saved as itself
(q92) and gets ``--per`` containers of a kind drawn from ``KINDS``: an inset on another photo
of the pool (45-80% of the width: smaller, a pasted picture is a sticker on the backdrop, whose
copy the result then is as well) or on a plain canvas (35-80%),
the photo whole in an app frame (``fit="contain"``) or cover-fitted into its slot, on a
presentation slide, with meme bars, or turned 12-30 degrees on an enlarged canvas; and crops
(55-90% a side, some enlarged back to the photo's size), where the larger image is the
original.  Each is re-saved at JPEG q70-92.

The scan runs cold in thorough mode; printed per kind: how many copies were put with their
photo, how many of those pairs carry the stage ``contains``, and how often the photo (not the
container, not the crop) was kept; then every false pair (two different photos in one group:
an inset with its backdrop, say), and the seam and footprint of every pair the local check
matched with one view inside the other (verify/local.py: what ``LocalParams.contains_seam`` and
``shrunk_seam`` were chosen on).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

import neardup
from neardup.embed.model import default_model_spec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "eval"))
from crops import POOL, photos  # noqa: E402

#: the crops' pool less the samples that are other shots (UKBench, Holidays) or copies (DISC)
#: of one another: every photo here is a different picture
DISTINCT = [d for d in POOL if d.name != "nd_samples"]
from populations import framed, inset, jpeg_bytes, make_frame, slide  # noqa: E402

#: kinds of container: the photo is shown whole (or, "frame-cover", most of it) inside
KINDS = ("inset-photo", "inset-canvas", "frame-contain", "frame-cover", "slide", "meme", "big-tilt")
#: kinds where the larger image is the original: never "contains", the photo's copy is kept last
CROPS = ("crop", "crop-enlarged")


def meme(im: Image.Image, r: random.Random) -> Image.Image:
    bar = int(im.height * r.uniform(0.12, 0.22))
    out = Image.new("RGB", (im.width, im.height + 2 * bar), (255, 255, 255))
    out.paste(im, (0, bar))
    return out


def big_tilt(im: Image.Image, r: random.Random) -> Image.Image:
    return im.rotate(r.uniform(12, 30) * r.choice([-1, 1]), resample=Image.Resampling.BICUBIC, expand=True)


def crop(im: Image.Image, r: random.Random, enlarge: bool) -> Image.Image:
    fx, fy = r.uniform(0.55, 0.9), r.uniform(0.55, 0.9)
    w, h = int(im.width * fx), int(im.height * fy)
    x, y = r.randint(0, im.width - w), r.randint(0, im.height - h)
    out = im.crop((x, y, x + w, y + h))
    return out.resize(im.size, Image.Resampling.BICUBIC) if enlarge else out


def build(out: Path, per: int, seed: int) -> dict[str, tuple[int, str]]:
    """Write the population; returns file name -> (photo id, kind) ("orig" for the photo)."""
    pool = photos(DISTINCT)
    r = random.Random(seed)
    rng = np.random.default_rng(seed)
    truth: dict[str, tuple[int, str]] = {}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    def save(name: str, im: Image.Image, pid: int, kind: str) -> None:
        (out / name).write_bytes(jpeg_bytes(im, r.randint(70, 92) if kind != "orig" else 92))
        truth[name] = (pid, kind)

    for i, im in enumerate(pool):
        save(f"p{i:03d}_orig.jpg", im, i, "orig")
        for k in range(per):
            kind = KINDS[(i * per + k) % len(KINDS)]
            if kind == "inset-photo":
                back = pool[(i + 1 + r.randrange(len(pool) - 1)) % len(pool)]
                got = inset(im, back, rng, size=back.size, share=float(rng.uniform(0.45, 0.8)))
            elif kind == "inset-canvas":
                got = inset(im, None, rng, size=(int(im.width * r.uniform(1.0, 1.6)), int(im.height * r.uniform(1.0, 1.6))))
            elif kind in ("frame-contain", "frame-cover"):
                got = framed(make_frame(seed * 1000 + i * 10 + k), im, label=f"@user{i}", fit=kind.split("-")[1])
            elif kind == "slide":
                got = slide(im, rng)
            elif kind == "meme":
                got = meme(im, r)
            else:
                got = big_tilt(im, r)
            save(f"p{i:03d}_{kind}_{k}.jpg", got, i, kind)
        c = CROPS[i % len(CROPS)]
        save(f"p{i:03d}_{c}.jpg", crop(im, r, c == "crop-enlarged"), i, c)
    return truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per", type=int, default=2)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=Path("/tmp/contains-pop"))
    ap.add_argument("--keep", action="store_true", help="reuse the population in --out if it is there")
    ap.add_argument("--cache", type=Path, help="a cache folder to keep (cold when new; default: a temporary one)")
    ap.add_argument("--model", type=Path, default=None, help="another ONNX model (benchmarks/quantise.py)")
    a = ap.parse_args()
    images = a.out / "images"
    truth_file = a.out / "truth.json"
    if a.keep and truth_file.exists():
        truth = {k: tuple(v) for k, v in json.loads(truth_file.read_text()).items()}
    else:
        truth = build(images, a.per, a.seed)
        truth_file.write_text(json.dumps(truth))
    with tempfile.TemporaryDirectory() as tmp:
        cache = a.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        if not (cache / "models").exists():
            (cache / "models").symlink_to(Path(default_model_spec(None).path).parent)
        extra = {"model": str(a.model)} if a.model is not None else {}
        res = neardup.scan([str(images)], cache=str(cache), mode="thorough", **extra)
    group_of: dict[str, int] = {}
    keep_of: dict[int, str] = {}
    stage_of: dict[frozenset[str], dict[str, object]] = {}
    for gi, g in enumerate(res.groups):
        keep_of[gi] = Path(g.keep).name
        for m in g.members:
            group_of[Path(m).name] = gi
        for p in g.pairs:
            stage_of[frozenset((Path(p.a).name, Path(p.b).name))] = {"stage": p.stage, **p.evidence}
    rows: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)
    for name, (pid, kind) in sorted(truth.items()):
        if kind == "orig":
            continue
        orig = f"p{pid:03d}_orig.jpg"
        together = name in group_of and group_of.get(orig) == group_of[name]
        ev = stage_of.get(frozenset((name, orig)), {})
        kept = together and keep_of[group_of[name]] == orig
        rows[kind].append((together, ev.get("stage") == "contains", kept))
    print(f"{len(truth)} images, {len(res.groups)} groups, thorough, "
          f"{res.stats.get('contains_pairs', 0)} contains candidates, {res.stats.get('local_checks', 0)} local checks")
    print(f"{'kind':<15} {'n':>4} {'found':>6} {'contains':>9} {'photo kept':>11}")
    for kind in (*KINDS, *CROPS):
        v = rows.get(kind, [])
        if v:
            f, c, k = (sum(x[i] for x in v) for i in range(3))
            print(f"{kind:<15} {len(v):>4} {f:>6} {c:>9} {k:>11}")
    false = [(Path(g.keep).name, sorted({truth[Path(m).name][0] for m in g.members}))
             for g in res.groups if len({truth[Path(m).name][0] for m in g.members}) > 1]
    print(f"groups mixing different photos: {len(false)}", *false[:10], sep="\n  ")
    seams = defaultdict(list)
    for names, ev in stage_of.items():
        if "seam" in ev and ev.get("stage") in ("contains", "local"):
            kinds = sorted(truth[n][1] for n in names)
            seams["/".join(kinds)].append((round(float(ev["seam"]), 2), round(float(ev.get("footprint", np.nan)), 2)))  # type: ignore[arg-type]
    for k, v in sorted(seams.items()):
        print(f"  seam, footprint of local and contains pairs {k}: {sorted(v)}")


if __name__ == "__main__":
    main()
