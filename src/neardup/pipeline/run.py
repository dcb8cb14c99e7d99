"""``scan()``: the stages in order (docs/architecture.md has the map).

list + extract (ingest.py) -> search columns (rows.py) -> candidates + verify (search.py) ->
thorough k-NN + local checks (thorough.py) -> group + keeper (grouping.py) -> ScanResult.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from ..config import Progress, ScanOptions
from ..embed.model import ModelSpec, scan_model
from ..errors import UsageError
from ..records import PairEvidence, Verified
from ..results import Root, ScanResult
from ..sources import check_root, configure, is_remote
from ..store import FeatureCache, default_cache_dir
from ..verify.rules import VerifyParams
from .grouping import apart_rows, group_pairs
from .ingest import ingest
from .listing import ListingCounter, skip_dirs_for
from .rows import RowAccess, load_search_columns
from .search import find_pairs, run_key
from .snapshot import RunSnapshot
from .stats import StageClock, scan_stats
from .thorough import Thorough

__all__ = ["scan"]

_DEFAULT_CACHE = object()


def scan(paths: Sequence[str | os.PathLike[str]], *, cache: str | os.PathLike[str] | None | object = _DEFAULT_CACHE,
         options: ScanOptions | None = None, progress: Progress | None = None, **overrides: object) -> ScanResult:
    """Find exact and near-duplicate images under ``paths``.

    Parameters
    ----------
    paths : folders, files or blob URLs, reported in results exactly as given here.
    cache : folder of the feature cache; ``None`` keeps features in memory only; by default
        the per-user cache (``$NEARDUP_CACHE`` or ``~/.cache/neardup``).
    options : a :class:`ScanOptions`; keyword ``overrides`` replace single fields.
    progress : optional callback ``progress(stage, advance, total)``.
    """
    roots = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    opts = (options or ScanOptions()).with_overrides(**overrides)
    opts.check()
    both = sorted(set(roots) & set(opts.reference))
    if both:
        raise UsageError(f"{', '.join(both)} given both to scan and as --reference; give each root once")
    roots += [r for r in dict.fromkeys(opts.reference)]  # reference roots are scanned with the others
    if not roots:
        raise UsageError("give at least one folder or file to scan")
    for p in roots:
        check_root(p)  # a malformed URL is a usage error before anything starts
    configure(retries=opts.retries)
    cache_dir = default_cache_dir() if cache is _DEFAULT_CACHE else cache
    assert cache_dir is None or isinstance(cache_dir, (str, os.PathLike))
    spec = scan_model(opts, cache_dir) if opts.mode == "thorough" else None
    # threads for the dear parts of verification and the keeper check (NumPy and the JPEG
    # decoder release the GIL); someone watching gets a count of the files ahead of the listing
    with FeatureCache(cache_dir) as fc, \
            ThreadPoolExecutor(opts.worker_count, "neardup-verify") as threads, \
            _blas_on_one_thread(opts.worker_count > 1):
        counter = ListingCounter(roots, progress, skip_dirs=skip_dirs_for(fc.path)) if progress is not None else None
        try:
            return _stages(roots, fc, opts, spec, progress or (lambda *a: None), threads, counter)
        finally:
            if counter is not None:
                counter.close()
            threads.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _blas_on_one_thread(limit: bool) -> Iterator[None]:
    """While the verify threads run matrix products side by side, each runs them on one thread:
    a BLAS pool per product put several threads on every core and spun them (docs/benchmarks.md,
    "BLAS threads")."""
    if not limit:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _stages(paths: list[str], fc: FeatureCache, opts: ScanOptions, spec: ModelSpec | None, progress: Progress,
            threads: ThreadPoolExecutor, counter: ListingCounter | None) -> ScanResult:
    clock = StageClock()
    with clock.stage("extract"):
        ingested = ingest(paths, fc, opts, spec, progress, lambda: counter.total if counter is not None else None)
    clock.workers_peak("extract")
    # fast mode's runs keep their search columns and window indexes beside the cache for the next
    # run over the same roots (pipeline/snapshot.py); thorough mode's k-NN changes with every image
    snapshot = RunSnapshot.beside(fc.path, run_key(paths, opts)) if spec is None else None
    with clock.stage("load"):
        cols = load_search_columns(fc, snapshot)
    params = VerifyParams(hash_threshold=opts.hash_threshold, crop_ncc=opts.crop_ncc)
    access = RowAccess(fc, cols)
    with clock.stage("candidates"):
        found = find_pairs(cols, fc, access, paths, opts, params, incremental=spec is None, threads=threads,
                           progress=progress, snapshot=snapshot)
    clock.split("candidates", "verify", found.verify_seconds)
    parts: list[tuple[Verified, np.ndarray | None]] = [(v, None) for v in found.verified]
    thorough = None
    if spec is not None:
        thorough = Thorough(fc, cols, spec, params, opts, fetch=access.fetch, flags=access.flags,
                            load_sigs=access.load_sigs, workers=opts.worker_count, max_pixels=opts.max_pixels,
                            similar=opts.similar)
        with clock.stage("embedding"):
            done = PairEvidence.of(parts).pairs
            parts.extend(thorough.pairs(np.unique(done.a * len(cols.digests) + done.b), progress))
        clock.split("embedding", "local", thorough.t_local)
    with clock.stage("group"):
        pairs = PairEvidence.of(parts).best_per_pair(len(cols.digests))
        if found.key is not None:
            fc.save_run(found.key, cols.digests, pairs.pairs, before=found.before)
        # contents a person marked "not a duplicate" of each other never share a group
        grouped = group_pairs(pairs, cols, fc, access, paths, params, apart=apart_rows(fc, cols), thorough=thorough,
                              threads=threads, max_pixels=opts.max_pixels, reference=opts.reference,
                              reference_groups=opts.include_reference_groups, memo_key=found.key)
        if thorough is not None:
            thorough.close()
    ingested.failures.sort(key=lambda f: f.path)
    stats = scan_stats(ingested, cols, found, grouped, thorough, opts, spec.model_id if spec else None, clock)
    roots = [Root(p, p if is_remote(p) else os.path.abspath(p), p in opts.reference) for p in paths]
    return ScanResult(grouped.groups, ingested.failures, stats, roots, os.getcwd())
