"""Embedding cosines behind ``SIMILAR_COSINE``: other shots of one scene vs distinct photos.

    python3 eval/similar.py /tmp/devset --cache DIR

Scans ``../shared/bench/real/nd_samples`` and the dev set in thorough mode with the cache DIR,
then prints the cosine range of same-scene pairs (UKBench views, INRIA Holidays shots), the
highest cosine between different scenes, and how many pairs of distinct dev-set photos
(originals and distractors) reach each threshold.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

import neardup
from neardup.embed.model import default_model_spec
from neardup.evaluate import load_truth
from neardup.store import FeatureCache

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"


def _scene(p: Path) -> str:
    return f"u{int(p.stem[7:]) // 4}" if p.stem.startswith("ukbench") else f"h{p.stem[:4]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("devset", type=Path)
    ap.add_argument("--cache", type=Path, required=True)
    a = ap.parse_args()
    samples = sorted((SHARED / "real" / "nd_samples" / "ukbench").glob("*.jpg")) + \
        sorted((SHARED / "real" / "nd_samples" / "inria_holidays").glob("*.jpg"))
    dev = [a.devset / "images" / r["file"] for r in load_truth(str(a.devset / "truth.csv"))
           if r["role"] in ("original", "distractor")]
    neardup.scan([str(p.parent) for p in samples[:1] + samples[-1:]] + [str(a.devset / "images")],
                 cache=str(a.cache), mode="thorough")
    model = default_model_spec(a.cache).model_id
    with FeatureCache(a.cache) as fc:
        def vecs(paths: list[Path]) -> np.ndarray:
            known = fc.lookup_files([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths], model=model)
            digests = [known[str(p)].digest for p in paths]
            e = fc.fetch_embeddings(sorted(set(digests)), model).astype(np.float32)
            pos = {d: i for i, d in enumerate(sorted(set(digests)))}
            return e[[pos[d] for d in digests]]

        s = vecs(samples)
        same, diff = [], []
        for i, j in itertools.combinations(range(len(samples)), 2):
            (same if _scene(samples[i]) == _scene(samples[j]) else diff).append(float(s[i] @ s[j]))
        d = vecs(dev)
    sims = (d @ d.T)[np.triu_indices(len(dev), 1)]
    print(f"same scene or object: {len(same)} pairs, cosine {min(same):.2f}-{max(same):.2f}; "
          f"different scenes: max {max(diff):.2f}")
    print(f"distinct dev photos, {len(sims):,} pairs: " +
          ", ".join(f">= {t}: {int((sims >= t).sum())}" for t in (0.6, 0.65, 0.7, 0.75, 0.8)))


if __name__ == "__main__":
    main()
