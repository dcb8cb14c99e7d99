"""Candidate pairs from embeddings: exact for small sets, FAISS IVF-PQ beyond.

Both report pairs ``a < b`` whose cosine may reach ``threshold``; the caller re-checks every
one with the exact cosine of the stored vectors, so the approximate index only decides which
pairs are looked at, never which are accepted.  Memory: the exact search holds the float32
vectors (``exact_max`` rows at most); the IVF-PQ index holds 32 bytes of code and 8 of id per
image after a PCA to 256 dimensions (about 40 MB at one million images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import KNN_THRESHOLD
from ..errors import UsageError

__all__ = ["KnnParams", "embedding_pairs", "ContainsParams", "region_pairs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnnParams:
    threshold: float = KNN_THRESHOLD  # cosine at which a pair is worth verifying
    exact_max: int = 10_000  # up to this many images: exact search, every pair above threshold
    k: int = 24  # IVF-PQ: neighbours asked per image
    nprobe: int = 0  # IVF lists probed per query; 0: a sixteenth of them (at least 32)
    margin: float = 0.10  # IVF-PQ distances are approximate: keep candidates this far below
    mutual_floor: float = 0.60  # each row's nearest neighbours down to this cosine are candidates too
    near: int = 3  # how many nearest neighbours per row that applies to
    pca_dim: int = 256
    seed: int = 0


def _faiss() -> Any:
    try:
        import faiss  # noqa: PLC0415 - FAISS is the [cnn] extra, loaded by thorough scans only
    except ImportError:

        raise UsageError("thorough mode needs FAISS: pip install 'neardup[cnn]'") from None
    return faiss


def embedding_pairs(
    chunks: Callable[[], Iterator[np.ndarray]], n: int, params: KnnParams, *, threads: int = 1
) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """Yield ``(a, b, floor)``: candidate row pairs, ``a < b``, in bounded batches, and the
    exact cosine they must reach (``threshold``, or ``mutual_floor`` for mutual neighbours).

    ``chunks()`` streams the (rows, d) float16 embeddings in row order; it is called once per
    pass, so the vectors never need to be in memory all together (except in exact mode).
    """
    if n < 2:
        return
    faiss = _faiss()
    faiss.omp_set_num_threads(max(1, threads))
    # each row's nearest neighbour: a pair of mutual nearest neighbours is a candidate even
    # below the threshold (a heavily rotated or cropped copy is often just that: the closest
    # thing to its original, at a modest cosine); one row costs 8 bytes here
    kk = params.near
    nn = np.full((n, kk), -1, np.int32)
    nn_sim = np.full((n, kk), -1.0, np.float32)
    if n <= params.exact_max:
        x = np.concatenate([c.astype(np.float32) for c in chunks()])
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        for s in range(0, n, 2048):
            q = x[s : s + 2048]
            sims, ids = index.search(q, min(n, kk + 1))
            _nearest(nn, nn_sim, np.arange(s, s + len(q)), sims, ids)
            lims, _, ids = index.range_search(q, params.threshold)
            a = np.repeat(np.arange(s, s + len(lims) - 1, dtype=np.int64), np.diff(lims).astype(np.int64))
            b = ids.astype(np.int64)
            keep = a < b
            if keep.any():
                yield a[keep], b[keep], params.threshold
        yield from _mutual(nn, nn_sim, params)
        return
    # large collections: PCA + IVF-PQ (trained on the first rows of a pass)
    ivf, reduced = _ivf_index(chunks, n, params)
    start = 0
    k = min(params.k, n)
    for c in chunks():
        sims, ids = ivf.search(reduced(c), k)
        _nearest(nn, nn_sim, np.arange(start, start + len(c)), sims, ids)
        a = np.repeat(np.arange(start, start + len(c), dtype=np.int64), k)
        b = ids.reshape(-1)
        keep = (b >= 0) & (sims.reshape(-1) >= params.threshold - params.margin) & (a != b)
        a, b = a[keep], b[keep]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        if lo.size:
            key = np.unique(lo * n + hi)
            yield key // n, key % n, params.threshold
        start += len(c)
    yield from _mutual(nn, nn_sim, params)


def _ivf_index(chunks: Callable[[], Iterator[np.ndarray]], n: int, params: KnnParams) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """A PCA + IVF-PQ index of every row of ``chunks`` (ids are row numbers), and the
    reduction that queries must go through.  Each step trains on the first rows of a pass
    (rows are in digest order, a random order of the contents), so memory is the samples, not
    the set."""
    faiss = _faiss()
    pca_rows = min(n, 20_000)
    sample = _first_rows(chunks, pca_rows, lambda c: c.astype(np.float32))
    d = sample.shape[1]
    dim = min(params.pca_dim, d)
    pca = faiss.PCAMatrix(d, dim)
    pca.train(sample)
    del sample

    def reduced(c: np.ndarray) -> np.ndarray:
        r = pca.apply(np.ascontiguousarray(c, dtype=np.float32))
        r /= np.linalg.norm(r, axis=1, keepdims=True) + 1e-12
        return r

    nlist = int(np.clip(4 * np.sqrt(n), 64, 65536))
    train = _first_rows(chunks, min(n, 40 * nlist, 200_000), reduced)
    quant = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFPQ(quant, dim, nlist, 32 if dim % 32 == 0 else 16, 8, faiss.METRIC_INNER_PRODUCT)
    ivf.train(train)
    del train
    start = 0
    for c in chunks():
        ivf.add_with_ids(reduced(c), np.arange(start, start + len(c), dtype=np.int64))
        start += len(c)
    ivf.nprobe = params.nprobe or max(32, nlist // 16)
    return ivf, reduced


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainsParams:
    """Candidates of the ``contains`` stage (embed/regions.py): for each image, the few images
    whose contained view is nearest one of its regions."""

    top: int = 3  # images given the local check per container: an inset shows one picture, a collage a few
    # and the next ones down to this rank, where the layout test finds them whole inside the
    # container (verify/inset.py): regional cosines of a true picture and of look-alikes are
    # often within a few hundredths of each other
    wider: int = 8
    inset_ncc: float = 0.85
    # a candidate's best regional cosine must reach this: the nearest unrelated image by region
    # sits at a median of about 0.6 (eval/contains.py), insets of the own population at 0.55-0.9
    floor: float = 0.5


def region_pairs(contained: Callable[[], Iterator[np.ndarray]], regions: Callable[[], Iterator[np.ndarray]], n: int,
                 params: KnnParams, contains: ContainsParams, *, threads: int = 1
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(container, contained, cosine, rank)`` row columns: for each row, the
    ``contains.wider`` other rows whose contained view is nearest one of its regions, at cosine
    >= the floor, ranked from 0.

    ``contained()`` streams (rows, d) float16 views, ``regions()`` (rows, R, d) float32 unit
    vectors, both in row order (a row with nothing stored is zeros: it finds nothing and is
    found by nothing).  Exact up to ``params.exact_max`` rows: the best rows by their best
    region are among each region's best ``wider + 1`` (the row itself may be one of them); PCA +
    IVF-PQ beyond, where the caller re-checks the exact cosine.
    """
    if n < 2:
        return
    faiss = _faiss()
    faiss.omp_set_num_threads(max(1, threads))
    k = min(n, contains.wider + 1)
    if n <= params.exact_max:
        x = np.concatenate([c.astype(np.float32) for c in contained()])
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        search = index.search
    else:
        ivf, reduced = _ivf_index(contained, n, params)

        def search(q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return ivf.search(reduced(q), kk)
    start = 0
    for block in regions():
        m, r, d = block.shape
        sims, ids = search(np.ascontiguousarray(block.reshape(m * r, d), np.float32), k)
        rows = np.repeat(np.arange(start, start + m, dtype=np.int64), r * k)
        yield from _best_per_row(rows, ids.reshape(-1).astype(np.int64), sims.reshape(-1), contains)
        start += m


def _best_per_row(rows: np.ndarray, ids: np.ndarray, sims: np.ndarray, contains: ContainsParams
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Of (row, id, cosine) hits, each row's ``contains.wider`` best distinct other ids, and
    their rank."""
    keep = (ids >= 0) & (ids != rows) & (sims >= contains.floor)
    rows, ids, sims = rows[keep], ids[keep], sims[keep]
    if not len(rows):
        return
    order = np.lexsort((-sims, ids, rows))  # per (row, id): the best cosine first
    rows, ids, sims = rows[order], ids[order], sims[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (ids[1:] != ids[:-1])
    rows, ids, sims = rows[first], ids[first], sims[first]
    order = np.lexsort((-sims, rows))  # per row: the best ids first
    rows, ids, sims = rows[order], ids[order], sims[order]
    starts = np.r_[0, np.flatnonzero(rows[1:] != rows[:-1]) + 1]
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    top = rank < contains.wider
    yield rows[top], ids[top], sims[top], rank[top]


def _first_rows(chunks: Callable[[], Iterator[np.ndarray]], k: int,
                f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``f`` of the first ``k`` rows of a pass over ``chunks``."""
    parts: list[np.ndarray] = []
    got = 0
    for c in chunks():
        parts.append(f(c[: k - got]))
        got += len(parts[-1])
        if got >= k:
            break
    return np.concatenate(parts)


def _nearest(nn: np.ndarray, nn_sim: np.ndarray, rows: np.ndarray, sims: np.ndarray, ids: np.ndarray) -> None:
    """Record each row's nearest neighbours other than itself."""
    kk = nn.shape[1]
    other = ids != rows[:, None]
    for i in range(len(rows)):
        sel = np.flatnonzero(other[i])[:kk]
        nn[rows[i], : len(sel)] = ids[i, sel]
        nn_sim[rows[i], : len(sel)] = sims[i, sel]


def _mutual(nn: np.ndarray, nn_sim: np.ndarray, params: KnnParams) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """Each row's nearest neighbours with cosine in [mutual_floor, threshold)."""
    a = np.repeat(np.arange(len(nn), dtype=np.int64), nn.shape[1])
    b = nn.reshape(-1).astype(np.int64)
    sim = nn_sim.reshape(-1)
    ok = (b >= 0) & (sim >= params.mutual_floor) & (sim < params.threshold)
    a, b = a[ok], b[ok]
    key = np.unique(np.minimum(a, b) * len(nn) + np.maximum(a, b))
    for s in range(0, len(key), 1 << 16):
        k = key[s : s + (1 << 16)]
        yield k // len(nn), k % len(nn), params.mutual_floor
