"""Thorough mode for a saved index: the collection's CNN embeddings beside its codes, its local
features cached when it is built, and a query's embedding candidates verified as a thorough
scan's k-NN stage verifies them (pipeline/thorough.py), so a query still reads no collection file.

Candidates are the collection rows at cosine >= ``KnnParams.threshold`` to a query, and each
query's ``near`` nearest rows down to ``mutual_floor``; the exact cosine over the memory-mapped
float16 embeddings, a block of rows at a time.  Not carried over from a scan: the nearest
neighbours seen from the collection's side (a collection row whose own nearest is the query),
and the ``contains`` stage's regional search.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..embed.knn import KnnParams
from ..embed.model import ModelSpec, scan_model
from ..records import SearchColumns, Verified
from ..store import FeatureCache
from ..verify.rules import VerifyParams

if TYPE_CHECKING:
    from ..config import Progress, ScanOptions
    from ..pipeline.rows import RowAccess
    from .segment import Segment

__all__ = ["index_model", "prepare_rows", "write_embeddings", "embedding_candidates", "verify_embedding_pairs",
           "EMBED_BLOCK"]

#: collection rows whose embeddings are compared with the queries at a time (~2.5 kB a row)
EMBED_BLOCK = 65_536
#: candidate pairs verified at a time (as a scan's k-NN stage: pipeline/thorough.py)
VERIFY_CHUNK = 4096


def index_model(opts: ScanOptions, folder: Path) -> ModelSpec:
    """The model of a thorough index: the default, exported into the index's cache folder."""
    return scan_model(opts, folder / "cache")


def prepare_rows(fc: FeatureCache, cols: SearchColumns, rows: np.ndarray, spec: ModelSpec, opts: ScanOptions,
                 access: RowAccess) -> None:
    """Compute and cache the local features of ``rows`` of this run (their files are read now,
    so that a query never reads them)."""
    from ..pipeline.thorough import Thorough  # noqa: PLC0415 - the thorough machinery loads on first use

    thorough = Thorough(fc, cols, spec, VerifyParams(hash_threshold=opts.hash_threshold, crop_ncc=opts.crop_ncc),
                        opts, fetch=access.fetch, flags=access.flags, load_sigs=access.load_sigs,
                        workers=opts.worker_count, max_pixels=opts.max_pixels)
    try:
        thorough.prepare_local(rows)
    finally:
        thorough.close()


def write_embeddings(folder: Path, fc: FeatureCache, digests: np.ndarray, spec: ModelSpec) -> None:
    """The embeddings of sorted ``digests`` as ``folder/embeddings.npy`` (float16, row order)."""
    first = fc.fetch_embeddings([digests[0].tobytes()], spec.model_id) if len(digests) else np.zeros((0, 1))
    out = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float16,
                                    shape=(len(digests), first.shape[1]))
    for s in range(0, len(digests), 8192):
        chunk = [d.tobytes() for d in digests[s : s + 8192]]
        out[s : s + len(chunk)] = fc.fetch_embeddings(chunk, spec.model_id)
    out.flush()
    del out


def embedding_candidates(segments: list[Segment], queries: np.ndarray, params: KnnParams
                         ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((query rows, global rows) at cosine >= threshold, (the same) of each query's nearest
    rows down to mutual_floor)`` for (Q, d) unit ``queries``."""
    q = np.ascontiguousarray(queries, np.float32)
    nq = len(q)
    near = max(1, params.near)
    best = np.full((nq, near), -2.0, np.float32)
    best_row = np.full((nq, near), -1, np.int64)
    above_q: list[np.ndarray] = []
    above_r: list[np.ndarray] = []
    for seg in segments:
        emb = seg.embeddings
        if emb is None or not nq:
            continue
        for s in range(0, len(emb), EMBED_BLOCK):
            sims = np.asarray(emb[s : s + EMBED_BLOCK], np.float32) @ q.T  # (rows, Q)
            r, c = np.nonzero(sims >= params.threshold)
            above_q.append(c.astype(np.int64))
            above_r.append(r.astype(np.int64) + seg.base + s)
            k = min(near, len(sims))
            top = np.argpartition(-sims, k - 1, axis=0)[:k].T  # (Q, k) rows of this block
            top_sims = np.take_along_axis(sims.T, top, axis=1)
            merged = np.concatenate([best, top_sims], axis=1)
            merged_row = np.concatenate([best_row, top + seg.base + s], axis=1)
            keep = np.argsort(-merged, axis=1, kind="stable")[:, :near]
            best, best_row = np.take_along_axis(merged, keep, axis=1), np.take_along_axis(merged_row, keep, axis=1)
    ok = (best >= params.mutual_floor) & (best_row >= 0)
    near_q = np.nonzero(ok)[0].astype(np.int64)
    above = (np.concatenate(above_q) if above_q else np.zeros(0, np.int64),
             np.concatenate(above_r) if above_r else np.zeros(0, np.int64))
    return above, (near_q, best_row[ok])


def verify_embedding_pairs(fc: FeatureCache, compact: SearchColumns, spec: ModelSpec, opts: ScanOptions,
                           access: RowAccess, pairs: list[tuple[np.ndarray, np.ndarray, float]], progress: Progress
                           ) -> list[tuple[Verified, np.ndarray]]:
    """Each ``(a, b, floor)`` of compact rows (a < b) verified as a thorough scan verifies its
    k-NN candidates: exact cosine >= floor, the hash tests, else local features."""
    from ..pipeline.thorough import Thorough  # noqa: PLC0415 - the thorough machinery loads on first use

    thorough = Thorough(fc, compact, spec, VerifyParams(hash_threshold=opts.hash_threshold, crop_ncc=opts.crop_ncc),
                        opts, fetch=access.fetch, flags=access.flags, load_sigs=access.load_sigs,
                        workers=opts.worker_count, max_pixels=opts.max_pixels)
    out: list[tuple[Verified, np.ndarray]] = []
    try:
        for a, b, floor in pairs:
            # a bounded batch at a time: their embeddings are read back for the exact cosine
            for s in range(0, len(a), VERIFY_CHUNK):
                out += thorough.verify_pairs(a[s : s + VERIFY_CHUNK], b[s : s + VERIFY_CHUNK], floor, progress)
    finally:
        thorough.close()
    return out
