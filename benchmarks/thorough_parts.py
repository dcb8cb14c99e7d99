"""The parts of thorough mode's cost that docs/benchmarks.md ("Thorough mode's speed") quotes.

    python3 benchmarks/thorough_parts.py [--images /tmp/devset/images] [--truth /tmp/devset/truth.csv]

1. The CNN (the exported Lite0, one thread as a worker runs it): ms an image at 224 and 128
   px for batch sizes 1-32, with ONNX Runtime's memory arena off and on.
2. Regional pooling (embed/regions.py) on random maps: ms an image.
3. ORB features (verify/local.py): the mirror's descriptors by a second detection on the
   mirrored image against at the mirrored keypoints; ms an image and the median of good
   matches against a flipped, brightened, 80% copy of each of 30 photos.
4. ECC: the refinements ``match_pair`` makes on the first 150 copy pairs of the truth file
   (recorded, then replayed) under 30 steps / 1e-4 and 15 / 1e-3: time ratio and the change
   of the aligned views' correlation.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageEnhance

from neardup.embed.model import default_model_spec
from neardup.embed.regions import pool_regions
from neardup.verify import local


def cnn(path: str) -> None:
    for arena in (False, True):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.enable_cpu_mem_arena = 1, 1, arena
        session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for side in (224, 128):
            row = []
            for batch in (1, 4, 8, 32):
                x = np.random.default_rng(0).random((batch, 3, side, side), np.float32)
                session.run(None, {name: x})
                runs = max(1, 64 // batch)
                t = time.perf_counter()
                for _ in range(runs):
                    session.run(None, {name: x})
                row.append(f"batch {batch}: {(time.perf_counter() - t) / (runs * batch) * 1000:.2f}")
            print(f"CNN {side} px, arena {'on' if arena else 'off'}: " + ", ".join(row) + " ms an image")


def regions() -> None:
    maps = np.maximum(np.random.default_rng(0).normal(size=(8, 1280, 7, 7)), 0).astype(np.float32)
    t = time.perf_counter()
    for _ in range(20):
        pool_regions(maps)
    print(f"regional pooling: {(time.perf_counter() - t) / 160 * 1000:.2f} ms an image")


def orb_mirror(files: list[Path]) -> None:
    orb = cv2.ORB_create(nfeatures=1500, fastThreshold=10)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)

    def good(d1: np.ndarray, d2: np.ndarray) -> int:
        return sum(1 for m in bf.knnMatch(d1, d2, k=2) if len(m) == 2 and m[0].distance < 0.8 * m[1].distance)

    def described(g: np.ndarray) -> tuple[list, np.ndarray]:  # type: ignore[type-arg]
        h, w = g.shape
        return orb.compute(g, local._spread(list(orb.detect(g, None)), w, h, 500))

    again, at_points, t_again, t_points = [], [], 0.0, 0.0
    for f in files[:30]:
        im = Image.open(f).convert("L")
        im.thumbnail((local.LOCAL_SIDE, local.LOCAL_SIDE))
        g = np.asarray(im)
        h, w = g.shape
        copy = ImageEnhance.Brightness(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).enhance(1.2)
        _, copy_desc = described(np.asarray(copy.resize((int(w * 0.8), int(h * 0.8)))))
        kps, _ = described(g)
        mirrored = np.ascontiguousarray(g[:, ::-1])
        t = time.perf_counter()
        _, desc_again = described(mirrored)
        t_again += time.perf_counter() - t
        t = time.perf_counter()
        flipped = [cv2.KeyPoint(w - 1 - k.pt[0], k.pt[1], k.size, (180.0 - k.angle) % 360.0, k.response, k.octave)
                   for k in kps]
        _, desc_points = orb.compute(mirrored, flipped)
        t_points += time.perf_counter() - t
        again.append(good(copy_desc, desc_again))
        at_points.append(good(copy_desc, desc_points))
    n = min(30, len(files))
    print(f"mirror descriptors: detect again {t_again / n * 1000:.2f} ms, median {np.median(again):.0f} good matches; "
          f"at the mirrored keypoints {t_points / n * 1000:.2f} ms, median {np.median(at_points):.0f}")


def ecc(images: Path, truth: Path) -> None:
    groups: dict[str, list[str]] = defaultdict(list)
    for row in csv.DictReader(truth.open()):
        if row["role"] in ("original", "copy"):
            groups[row["group"]].append(row["file"])
    pairs = [(g[0], f) for g in groups.values() for f in g[1:]][:150]
    recorded: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    original = cv2.findTransformECC

    def record(template, image, warp, motion, criteria, mask, size):  # type: ignore[no-untyped-def]
        recorded.append((template.copy(), image.copy(), warp.copy()))
        return original(template, image, warp, motion, criteria, mask, size)

    def features(name: str) -> local.LocalFeatures:
        im = Image.open(images / name).convert("RGB")
        im.thumbnail((local.LOCAL_SIDE, local.LOCAL_SIDE))
        return local.local_features(np.asarray(im))

    cv2.findTransformECC = record
    try:
        for a, b in pairs:
            local.match_pair(features(a), features(b), local.LocalParams())
    finally:
        cv2.findTransformECC = original

    def replay(criteria: tuple[int, int, float]) -> tuple[float, np.ndarray]:
        t, scores = time.perf_counter(), []
        for template, image, warp in recorded:
            try:
                _, warp = cv2.findTransformECC(template, image, warp.copy(), cv2.MOTION_HOMOGRAPHY, criteria, None, 1)
            except cv2.error:
                scores.append(np.nan)
                continue
            size = (template.shape[1], template.shape[0])
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            back = cv2.warpPerspective(image, warp, size, flags=flags)
            seen = cv2.warpPerspective(np.ones_like(image), warp, size, flags=flags) > 0.999
            x, y = template[seen] - template[seen].mean(), back[seen] - back[seen].mean()
            scores.append(float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum() + 1e-6)))
        return time.perf_counter() - t, np.array(scores)

    steps = cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT
    t_full, full = replay((steps, 30, 1e-4))
    t_short, short = replay((steps, *local.ECC_KEYPOINTS))
    diff = short - full
    print(f"ECC on {len(recorded)} refinements: {local.ECC_KEYPOINTS} takes {t_short / t_full:.2f}x the time of "
          f"(30, 1e-4); correlation change median {np.nanmedian(diff):+.4f}, 5th percentile "
          f"{np.nanpercentile(diff, 5):+.4f}, least {np.nanmin(diff):+.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=Path, default=Path("/tmp/devset/images"))
    ap.add_argument("--truth", type=Path, default=Path("/tmp/devset/truth.csv"))
    a = ap.parse_args()
    cv2.setNumThreads(1)
    cnn(default_model_spec(None).path)
    regions()
    orb_mirror(sorted(a.images.glob("*.jpg")))
    ecc(a.images, a.truth)


if __name__ == "__main__":
    main()
