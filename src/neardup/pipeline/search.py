"""Stages 4-5, candidates streamed into verification: the exact multi-index search puts pairs
forward, each distinct pair is verified once, VERIFY_BATCH at a time (a bounded read of the
store), and an earlier run over the same roots lends its verified pairs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np

from ..candidates.mih import PairBatch
from ..candidates.search import candidate_batches
from ..config import Progress, ScanOptions
from ..features.extract import FEATURE_VERSION
from ..features.windows import WINDOW_CODES, WINDOWS
from ..records import SearchColumns, Verified
from ..store import FeatureCache
from ..verify.rules import CropQueue, SeenPairs, VerifyParams, verify_batch
from .rows import RowAccess, member
from .snapshot import RunSnapshot

__all__ = ["Found", "find_pairs", "run_key", "VERIFY_BATCH", "verify_candidates", "stored_tilt_codes"]

#: candidate pairs verified at a time: bounds the rows read from the cache (~370 bytes each)
VERIFY_BATCH = 16_384


@dataclass
class Found:
    """The verified pairs of the fast search (and the last run's), with the counts the funnel shows."""

    verified: list[Verified] = field(default_factory=list)
    has_candidate: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    candidates: int = 0  # distinct pairs of contents put forward
    hits: int = 0  # what the search found, counting a pair once per code that found it
    searched: int = 0  # contents searched (the new ones, on an incremental run)
    reused: int = 0  # pairs lent by the last run
    verify_seconds: float = 0.0  # of the candidate stage's time, spent verifying
    key: str | None = None  # the incremental run's key (fast mode)
    before: np.ndarray | None = None  # the contents of the last run under ``key``


def run_key(paths: list[str], opts: ScanOptions) -> str:
    """What makes an earlier run's verified pairs reusable: the same roots, features and
    verification settings (fast mode; thorough mode's k-NN neighbours change with every image)."""
    parts = [FEATURE_VERSION, "windows-3", f"r{opts.radius}", f"t{opts.hash_threshold}", f"c{opts.crop_ncc}",
             *sorted(paths)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def stored_tilt_codes(cols: SearchColumns) -> np.ndarray | None:
    """(n, 12) the tilted-frame codes the extractor stored for every row (``cols.windows``
    after the crop windows), or None where the columns carry none.

    A view, not a copy: the crop queue gathers the rows of each batch from it and drops the
    pages of a file-mapped column after (:func:`~neardup.spill.release_pages`), so a million
    rows' tilt codes (96 MB) are never held at once (docs/benchmarks.md, "Memory at a million")."""
    w = cols.windows
    if w.ndim != 2 or w.shape[0] != len(cols.p64) or w.shape[1] != WINDOW_CODES:
        return None
    return w[:, len(WINDOWS) :]


class _Verifier:
    """Candidate pairs gathered and verified a batch at a time, into ``found``."""

    def __init__(self, access: RowAccess, params: VerifyParams, threads: Executor, progress: Progress,
                 found: Found) -> None:
        self.access, self.params, self.progress, self.found = access, params, progress, found
        self.queue = CropQueue(load_sigs=access.load_sigs, params=params, aspect=access.flags["aspect"],
                               tilt_codes=stored_tilt_codes(access.cols), crop_cache=access.crops, pool=threads)
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.n_pending = 0

    def add(self, a: np.ndarray, b: np.ndarray, distance: np.ndarray) -> None:
        self.pending.append((a, b, distance))
        self.n_pending += len(a)
        if self.n_pending >= VERIFY_BATCH:
            self.run()

    def run(self) -> None:
        t0 = time.perf_counter()
        if self.pending:
            a, b, dist = (np.concatenate(x) for x in zip(*self.pending))
            self.pending, self.n_pending = [], 0
            for start in range(0, len(a), VERIFY_BATCH):
                sel = slice(start, start + VERIFY_BATCH)
                self.found.verified.append(verify_batch(
                    a[sel], b[sel], dist[sel], fetch=self.access.fetch, flags=self.access.flags, params=self.params,
                    load_sigs=self.access.load_sigs, crop_queue=self.queue))
                self.progress("verify", len(a[sel]), self.found.candidates)
        self.found.verify_seconds += time.perf_counter() - t0

    def finish(self) -> None:
        self.run()
        t0 = time.perf_counter()
        self.found.verified.append(self.queue.flush())
        self.found.verify_seconds += time.perf_counter() - t0


def find_pairs(cols: SearchColumns, fc: FeatureCache, access: RowAccess, paths: list[str], opts: ScanOptions,
               params: VerifyParams, *, incremental: bool, threads: Executor, progress: Progress,
               snapshot: RunSnapshot | None = None) -> Found:
    """Every verified pair within the radius; on an incremental run only the contents new since
    the last run are searched (against all), and its pairs are reused.  ``snapshot``: the old
    rows' saved window indexes are queried, not built again, and what this run builds (with
    the columns of the rows it adds) is saved for the next."""
    n = len(cols.digests)
    found = Found(has_candidate=np.zeros(n, dtype=bool))
    found.key = run_key(paths, opts) if incremental else None
    found.before = fc.previous_run(found.key, current=cols.digests) if found.key is not None and n else None
    fresh = np.ones(n, dtype=bool)
    if found.before is not None and found.key is not None:
        fresh = ~member(cols.digests, found.before)
        got = fc.previous_pairs(found.key, cols.digests)
        found.reused = len(got)
        found.verified.append(got)
    new_rows = np.flatnonzero(fresh)
    found.searched = int(len(new_rows)) if n > 1 else 0
    if n < 2 or not len(new_rows):
        if snapshot is not None and n:  # an unchanged rerun whose snapshot was lost or of an older
            snapshot.save(cols, radius=opts.radius)  # format keeps the columns, or each rerun reads the store
        return found
    n_queries = int(len(new_rows)) + (int(n - len(new_rows)) if len(new_rows) < n else 0)

    def searched(rows: int) -> None:
        progress("search", rows, n_queries)

    verify_candidates(candidate_batches(cols, fresh, radius=opts.radius, threads=opts.worker_count,
                                        searched=searched, saved=snapshot), access, params, threads=threads,
                      progress=progress, found=found)
    if snapshot is not None:
        snapshot.save(cols, radius=opts.radius)
    return found


def verify_candidates(batches: Iterable[PairBatch], access: RowAccess, params: VerifyParams, *, threads: Executor,
                      progress: Progress, found: Found) -> None:
    """Verify every distinct pair of ``batches`` (rows of ``access.cols``) once, into ``found``:
    a scan's candidates and a query's alike, so both give the same evidence."""
    n = len(access.cols.digests)
    # the search can find a pair several times (from both ends, by several orientations and the
    # centre window): each distinct pair is verified, and counted, once
    seen = SeenPairs()
    first_new = len(found.verified)  # what this run verifies, after the last run's pairs
    verifier = _Verifier(access, params, threads, progress, found)
    for pb in batches:
        found.hits += len(pb)
        new = seen.fresh(pb.a * n + pb.b, pb.distance)
        k = int(new.sum())
        if not k:
            continue
        found.candidates += k
        found.has_candidate[pb.a[new]] = True
        found.has_candidate[pb.b[new]] = True
        verifier.add(pb.a[new], pb.b[new], pb.distance[new])
    verifier.finish()
    # a pair is verified when first found; its 64-bit distance is the least of every code that
    # found it, whatever the order (blocks, threads, windows) the search came upon them
    found.verified[first_new:] = [replace(v, p64=seen.least(v.a * n + v.b)) if len(v) else v
                                  for v in found.verified[first_new:]]
