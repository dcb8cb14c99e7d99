"""Embedding k-NN candidates at scale: time, peak RSS and recall of planted near-copies.

    python3 benchmarks/knn.py --n 100000 [--dim 1280] [--exact-max 10000] [--probes 160]
    python3 benchmarks/knn.py --from-cache CACHE/features.sqlite      # real embeddings

Vectors mimic CNN embeddings: a 256-d latent with a decaying spectrum, mapped into ``--dim``
by a fixed random orthonormal basis, plus a little isotropic noise (float16, L2-normalised);
1% are planted near-copies at cosine ~0.8-0.95, streamed in chunks as the pipeline streams
them from the cache.  Above ``--exact-max`` the
search is PCA-256 + IVF-PQ; below it, exact.  Prints the seconds, the peak RSS of this process
(VmHWM), how many planted pairs came out as candidates, and the candidate count.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

import numpy as np

from neardup.embed.knn import KnnParams, embedding_pairs
from neardup.pipeline.stats import _peak_self_mb, _reset_peak


def chunks_of(n: int, dim: int, seed: int, chunk: int = 8192, latent: int = 256):  # type: ignore[no-untyped-def]
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, latent)))
    spectrum = (1.0 / np.sqrt(1.0 + np.arange(latent))).astype(np.float32)

    def gen():  # type: ignore[no-untyped-def]
        for s in range(0, n, chunk):
            rng = np.random.default_rng([seed, s])
            z = rng.normal(size=(min(chunk, n - s), latent)).astype(np.float32) * spectrum
            # every 100th row is a near-copy of the row before it (same chunk: chunk % 100 == 0)
            for i in range(1, len(z), 100):
                z[i] = z[i - 1] + rng.uniform(0.3, 0.7) * rng.normal(size=latent).astype(np.float32) * spectrum
            x = z @ basis.T.astype(np.float32)
            x += 0.02 * rng.normal(size=x.shape).astype(np.float32) * float(np.linalg.norm(spectrum)) / np.sqrt(dim)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            yield x.astype(np.float16)
    return gen


def real(a: argparse.Namespace) -> None:
    """Recall of the IVF-PQ path against exact search on stored, real embeddings."""
    db = sqlite3.connect(f"file:{a.from_cache}?mode=ro", uri=True)
    model = a.model_id or db.execute("SELECT model FROM embeddings LIMIT 1").fetchone()[0]
    x = np.stack([np.frombuffer(v, "<f2") for (v,) in
                  db.execute("SELECT vec FROM embeddings WHERE model=? ORDER BY digest", (model,))])
    n = len(x)

    def gen():  # type: ignore[no-untyped-def]
        for s in range(0, n, 512):
            yield x[s : s + 512]

    xf = x.astype(np.float32)
    want = set(zip(*(v.tolist() for v in np.nonzero(np.triu(xf @ xf.T >= 0.70, 1)))))
    got = {}
    for name, params in (("exact", KnnParams(exact_max=n)), ("IVF-PQ", KnnParams(exact_max=min(100, n - 1), nprobe=a.probes))):
        found: set[tuple[int, int]] = set()
        for p, q, _ in embedding_pairs(gen, n, params, threads=a.threads):
            found.update(zip(p.tolist(), q.tolist()))
        got[name] = len(want & found)
    print(f"{n:,} stored embeddings ({model}); pairs at cosine >= 0.70: {len(want):,}; "
          f"candidates among them: exact {got['exact']:,}, IVF-PQ {got['IVF-PQ']:,} ({got['IVF-PQ'] / max(1, len(want)):.1%})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--exact-max", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--probes", type=int, default=0, help="IVF lists probed (0: the default, a sixteenth)")
    ap.add_argument("--from-cache", type=Path, default=None, metavar="FEATURES_SQLITE",
                    help="instead of synthetic vectors: the embeddings stored in a neardup cache (with --model-id), "
                         "searched once exactly and once through IVF-PQ (--exact-max below their count)")
    ap.add_argument("--model-id", default=None)
    a = ap.parse_args()
    if a.from_cache is not None:
        real(a)
        return
    gen = chunks_of(a.n, a.dim, seed=7)
    planted = {(i - 1, i) for s in range(0, a.n, 8192) for i in range(s + 1, min(a.n, s + 8192), 100)}
    _reset_peak()
    t = time.perf_counter()
    found: set[tuple[int, int]] = set()
    n_pairs = 0
    for x, y, _ in embedding_pairs(gen, a.n, KnnParams(exact_max=a.exact_max, nprobe=a.probes), threads=a.threads):
        n_pairs += len(x)
        found.update(p for p in zip(x.tolist(), y.tolist()) if p in planted)
    wall = time.perf_counter() - t
    print(f"n={a.n:,} dim={a.dim} {'exact' if a.n <= a.exact_max else 'IVF-PQ'}: {wall:.1f} s, "
          f"peak RSS {_peak_self_mb():.0f} MB, planted found {len(found):,} / {len(planted):,}, "
          f"candidate pairs {n_pairs:,}")


if __name__ == "__main__":
    main()
