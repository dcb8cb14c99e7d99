"""The scan pipeline: list -> extract (cached) -> candidates -> verify -> group -> result."""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache.sqlite import FeatureCache, default_cache_dir
from ..candidates.mih import MultiIndex, PairBatch
from ..config import Progress, ScanOptions
from ..errors import CacheError, DecodeError, SourceError, UsageError
from ..features.extract import DIGEST, FEATURE_VERSION, is_low_info
from ..features.quality import COLOURFUL, QUALITY_FIELDS, QualityFacts
from ..group.files import FileFacts, file_preference, root_index, why_preferred
from ..group.keeper import Contest, provisional_scores, settle
from ..group.unionfind import UnionFind, guarded_groups
from ..records import SearchColumns, Stage
from ..sources import configure, is_remote, open_source, scrub
from ..verify.rules import STAGE_NAMES, CropQueue, SeenPairs, Verified, VerifyParams, verify_batch
from .extract import Limits, batched, extract_many
from .listing import ListingCounter, ListingTally, list_entries
from .result import Failure, Group, Pair, Root, ScanResult
from .stats import StageClock

if TYPE_CHECKING:
    from ..embed.model import ModelSpec

__all__ = ["scan", "ScanOptions", "Progress", "candidate_batches"]

logger = logging.getLogger(__name__)

_NO_CACHE = object()

#: candidate pairs verified at a time: bounds the rows read from the cache (~370 bytes each)
VERIFY_BATCH = 16_384
#: query rows searched at a time (the progress bar's step; the index splits them further)
SEARCH_BLOCK = 16_384


#: this many reads in a row failing as "unreachable" means the source is down: stop cleanly
UNREACHABLE_STREAK = 16


def scan(
    paths: Sequence[str | os.PathLike[str]],
    *,
    cache: str | os.PathLike[str] | None | object = _NO_CACHE,
    options: ScanOptions | None = None,
    progress: Progress | None = None,
    **overrides: object,
) -> ScanResult:
    """Find exact and near-duplicate images under ``paths``.

    Parameters
    ----------
    paths : folders or files, reported in results exactly as given here.
    cache : folder of the feature cache; ``None`` keeps features in memory only; by default
        the per-user cache (``$NEARDUP_CACHE`` or ``~/.cache/neardup``).
    options : a :class:`ScanOptions`; keyword ``overrides`` replace single fields.
    progress : optional callback ``progress(stage, advance, total)``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise UsageError("give at least one folder or file to scan")
    opts = options or ScanOptions()
    if overrides:
        fields = {f: getattr(opts, f) for f in ScanOptions.__dataclass_fields__}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise UsageError(f"unknown scan option(s): {', '.join(sorted(unknown))}; known: {', '.join(fields)}")
        fields.update(overrides)
        opts = ScanOptions(**fields)  # type: ignore[arg-type]
    opts.check()
    for p in paths:
        open_source(os.fspath(p))  # a malformed URL is a usage error before anything starts
    configure(retries=opts.retries)
    cache_dir = default_cache_dir() if cache is _NO_CACHE else cache
    spec = None
    if opts.mode == "thorough":
        missing = [m for m in ("onnxruntime", "faiss", "cv2") if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(f"--mode thorough needs {', '.join(missing)}: pip install 'neardup[cnn]' "
                             "(and 'neardup[export]' once, to export the default model)")
        from ..embed.model import ModelSpec

        if opts.model is not None:
            spec = ModelSpec.from_file(opts.model, input_size=opts.model_size, mean=opts.model_mean, std=opts.model_std)
        else:
            from ..embed.model import default_model_spec

            spec = default_model_spec(cache_dir if cache_dir is not None else default_cache_dir())  # type: ignore[arg-type]
        # load it once here: a model that does not load is a clear error now, not a broken
        # worker pool later
        from ..embed.model import Embedder

        Embedder(spec)
    with FeatureCache(cache_dir) as fc:  # type: ignore[arg-type]
        return _run([os.fspath(p) for p in paths], fc, opts, progress, spec)


_SEARCH_FIELDS = ("p64", "c64", "canon", "alt_mask", "energy", "content_side", "quality")


def _load_search_columns(fc: FeatureCache) -> SearchColumns:
    digests, counts = fc.run_contents()
    n = len(digests)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("p64", "c64", "ar", "ap", "ac", "low", "col")}
    done = 0
    colourfulness = QUALITY_FIELDS.index("colourfulness")
    for c in fc.iter_run_features(_SEARCH_FIELDS):
        got = c["digest"]
        k = len(got)
        if got.shape[1] != digests.shape[1] or not np.array_equal(got, digests[done : done + k]):
            raise CacheError("features vanished from the cache during the run; run the scan again")
        p64, c64, canon, alt_mask = c["p64"], c["c64"], c["canon"].astype(np.int64), c["alt_mask"].astype(np.uint8)
        energy, side, quality = c["energy"], c["content_side"], c["quality"]
        local = np.arange(k)
        parts["p64"].append(p64[local, canon])
        parts["c64"].append(c64[local, canon])
        ar, av = np.nonzero((alt_mask[:, None] >> np.arange(8, dtype=np.uint8)) & 1)
        parts["ar"].append(ar + done)
        parts["ap"].append(p64[ar, av])
        parts["ac"].append(c64[ar, av])
        parts["low"].append(np.asarray(is_low_info(energy, side), dtype=bool))
        parts["col"].append(quality[:, colourfulness] > COLOURFUL)
        done += k
    if done != n:
        raise CacheError("features vanished from the cache during the run; run the scan again")

    def cat(key: str, dtype: type) -> np.ndarray:
        return np.concatenate(parts.pop(key)).astype(dtype, copy=False) if n else np.zeros(0, dtype)

    return SearchColumns(digests, counts, cat("p64", np.uint64), cat("c64", np.uint64), cat("ar", np.int64),
                         cat("ap", np.uint64), cat("ac", np.uint64), cat("low", bool), cat("col", bool))


def _run(paths: list[str], fc: FeatureCache, opts: ScanOptions, progress: Progress | None,
         spec: ModelSpec | None = None) -> ScanResult:
    workers = opts.workers or (os.cpu_count() or 1)
    # threads for the dear parts of verification and the keeper check (NumPy and the JPEG
    # decoder release the GIL)
    threads = ThreadPoolExecutor(workers, thread_name_prefix="neardup-verify")
    # someone watching gets a count of the files ahead of the listing, so the bars have an end
    counter = ListingCounter(paths, progress) if progress is not None else None
    try:
        return _stages(paths, fc, opts, progress or (lambda *a: None), spec, threads, counter)
    finally:
        if counter is not None:
            counter.close()
        threads.shutdown(wait=True, cancel_futures=True)


def _stages(paths: list[str], fc: FeatureCache, opts: ScanOptions, progress: Progress, spec: ModelSpec | None,  # noqa: C901 - every stage in one function: being split into stage functions (issue 17, open)
            threads: ThreadPoolExecutor, counter: ListingCounter | None) -> ScanResult:
    clock = StageClock()
    failures: list[Failure] = []
    tally = ListingTally()

    def listed_total() -> int | None:
        return counter.total if counter is not None else None

    n_decoded = n_cached = n_listed = n_read = 0
    workers = opts.workers or (os.cpu_count() or 1)
    model_id = spec.model_id if spec is not None else None
    fc.start_run()

    # -- scan + extract, streamed: cache hits are recorded as the pool pulls the misses ------
    def misses() -> Iterator[tuple[str, int, int, str | None]]:
        nonlocal n_listed, n_cached
        for batch in batched(list_entries(paths, failures, tally), opts.batch):
            n_listed += len(batch)
            known = fc.lookup_files([(e.path, e.size, e.mtime_ns, e.etag) for e in batch], model=model_id)
            found: list[tuple[str, bytes, int, int]] = []
            for e in batch:
                rec = known.get(e.path)
                if rec is None:
                    yield (e.path, e.size, e.mtime_ns, e.etag)
                    continue
                n_cached += 1
                if rec.digest is not None:
                    found.append((e.path, rec.digest, e.size, e.mtime_ns))
                else:
                    failures.append(Failure(e.path, rec.error_stage or "decode", rec.error or "", rec.error_reason or ""))
            fc.add_run(found)
            progress("extract", len(known), listed_total())

    streak = 0
    pool_stats: dict[str, int] = {}
    if opts.executor == "dask":
        from ..executors.dask import DASK_BATCH, dask_extract_many

        outcomes = dask_extract_many(misses(), scheduler=opts.scheduler, workers=workers, max_pixels=opts.max_pixels,
                                     model=spec, retries=opts.retries, chunk=max(1, min(DASK_BATCH, opts.batch)),
                                     time_budget=opts.time_budget)
    else:
        outcomes = extract_many(misses(), workers=workers, max_pixels=opts.max_pixels, cache_file=fc.path,
                                model=spec, retries=opts.retries, chunk=max(1, min(32, opts.batch)),
                                limits=Limits(time_budget=opts.time_budget, memory_mb=opts.worker_memory),
                                stats=pool_stats, remote=any(is_remote(p) for p in paths))
    with clock.stage("extract"), closing(outcomes):  # an error below still shuts the workers down
        for ch in outcomes:
            outs = ch.outcomes
            emb = ch.embeddings
            fc.put_batch(
                [(o.path, o.size, o.mtime_ns, o.digest, o.error_stage, o.error_reason, o.error, o.etag)
                 for o in outs if o.cacheable],
                ch.features,
                [(d.tobytes(), model_id, emb[k].astype("<f2").tobytes()) for k, d in enumerate(ch.features.digest)]
                if emb is not None and model_id is not None and len(emb) else [],
                run=[(o.path, o.digest, o.size, o.mtime_ns) for o in outs if o.digest is not None],
            )
            n_read += sum(o.error_stage != "read" for o in outs)
            for o in outs:
                streak = streak + 1 if o.error_reason == "unreachable" else 0
                if streak >= UNREACHABLE_STREAK:
                    raise SourceError(f"{streak} reads in a row failed, the last with: {scrub(o.error or '')} "
                                      f"({scrub(o.path)}); the source looks unreachable. Finished work is "
                                      "cached: run the same scan again to resume")
                if o.digest is None:
                    failures.append(Failure(o.path, o.error_stage or "decode", o.error or "", o.error_reason or ""))
                else:
                    n_decoded += o.fresh
                    n_cached += not o.fresh
            progress("extract", len(outs), listed_total())
    clock.workers_peak("extract")

    # -- load the search columns of the distinct contents ------------------------------
    with clock.stage("load"):
        cols = _load_search_columns(fc)
        n = len(cols.digests)

    params = VerifyParams(hash_threshold=opts.hash_threshold, crop_ncc=opts.crop_ncc)
    flags = {"low_info": cols.low_info, "colourful": cols.colourful}

    def load_sigs(rows: np.ndarray) -> np.ndarray:
        return fc.load_signatures([cols.digest(int(r)) for r in rows])

    crops = _CropCache(fc, cols)

    def fetch(rows: np.ndarray) -> dict[str, np.ndarray]:
        return fc.fetch([cols.digest(int(r)) for r in rows], ("d256", "colour", "p64"))

    # -- candidates, streamed into verification ----------------------------------------
    va: list[np.ndarray] = []
    vb: list[np.ndarray] = []
    vstage: list[np.ndarray] = []
    vd: list[np.ndarray] = []
    vp: list[np.ndarray] = []
    vc: list[np.ndarray] = []
    vn: list[np.ndarray] = []
    vx: list[np.ndarray] = []  # thorough evidence: (k, 3) cosine, inliers, aligned ncc
    n_cand = n_hits = 0
    t_verify = 0.0
    # the search can find a pair several times (from both ends, by several orientations and the
    # centre window): each distinct pair is verified, and counted, once
    candidates = SeenPairs()
    has_candidate = np.zeros(n, dtype=bool)
    queue = CropQueue(load_sigs=load_sigs, params=params, crop_cache=crops, pool=threads)

    def keep(ver: Verified, extra: np.ndarray | None = None) -> None:
        if len(ver):
            for acc, col in ((va, ver.a), (vb, ver.b), (vstage, ver.stage), (vd, ver.d256),
                             (vp, ver.p64), (vc, ver.colour), (vn, ver.ncc)):
                acc.append(col)
            vx.append(np.full((len(ver), 3), np.nan, np.float32) if extra is None else extra)

    pend: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_pend = 0

    def verify_pending() -> float:
        """Verify the candidate pairs gathered so far, VERIFY_BATCH at a time: each batch reads its
        rows from the cache once (a bounded read); returns the seconds it took."""
        nonlocal pend, n_pend
        t0 = time.perf_counter()
        if pend:
            a, b, dist = (np.concatenate(x) for x in zip(*pend))
            pend, n_pend = [], 0
            for s2 in range(0, len(a), VERIFY_BATCH):
                sel = slice(s2, s2 + VERIFY_BATCH)
                keep(verify_batch(a[sel], b[sel], dist[sel], fetch=fetch, flags=flags, params=params,
                                  load_sigs=load_sigs, crop_queue=queue))
                progress("verify", len(a[sel]), n_cand)
        return time.perf_counter() - t0

    # an earlier run over the same roots and settings left its contents and verified pairs:
    # then only the contents new since are searched (against all), and its pairs are reused
    run_key = _run_key(paths, opts) if spec is None else None
    before = fc.previous_run(run_key) if run_key is not None and n else None
    fresh = np.ones(n, dtype=bool)
    n_reused = 0
    if before is not None:
        fresh = ~_member(cols.digests, before)
        got = fc.previous_pairs(run_key, cols.digests)  # type: ignore[arg-type]
        if len(got):
            n_reused = len(got)
            keep(got)
    new_rows = np.flatnonzero(fresh)

    with clock.stage("candidates"):
        if n > 1 and len(new_rows):
            n_queries = int(len(new_rows)) + (int(n - len(new_rows)) if len(new_rows) < n else 0)

            def searched(rows: int) -> None:
                progress("search", rows, n_queries)

            for pb in candidate_batches(cols, fresh, radius=opts.radius, threads=workers, searched=searched):
                n_hits += len(pb)
                new = candidates.fresh(pb.a * n + pb.b)
                k = int(new.sum())
                if not k:
                    continue
                n_cand += k
                has_candidate[pb.a[new]] = True
                has_candidate[pb.b[new]] = True
                pend.append((pb.a[new], pb.b[new], pb.distance[new]))
                n_pend += k
                if n_pend >= VERIFY_BATCH:
                    t_verify += verify_pending()
            t_verify += verify_pending()
            t0 = time.perf_counter()
            keep(queue.flush())
            t_verify += time.perf_counter() - t0
    clock.split("candidates", "verify", t_verify)

    thorough = None
    if spec is not None:
        from .thorough import Thorough

        thorough = Thorough(fc, cols, spec, params, opts, fetch=fetch, flags=flags, load_sigs=load_sigs,
                            workers=workers, max_pixels=opts.max_pixels, similar=opts.similar)
        with clock.stage("embedding"):
            done = np.unique(np.concatenate(va) * n + np.concatenate(vb)) if va else np.zeros(0, np.int64)
            for ver, extra in thorough.pairs(done, progress):
                keep(ver, extra)
        clock.split("embedding", "local", thorough.t_local)
    candidates = SeenPairs()  # free it: the pairs it held are decided

    # -- group ------------------------------------------------------------------------
    with clock.stage("group"):
        if va:
            A, B = np.concatenate(va), np.concatenate(vb)
            S, D, P = np.concatenate(vstage), np.concatenate(vd), np.concatenate(vp)
            C, N = np.concatenate(vc), np.concatenate(vn)
            X = np.concatenate(vx)
            # a pair found several times (both ends, centre window) keeps its best evidence,
            # whatever order threads and batches found it in
            key = A * max(n, 1) + B
            order = np.lexsort((np.nan_to_num(-N, nan=1.0), P, D, S, key))
            _, first = np.unique(key[order], return_index=True)
            pick = order[first]
            A, B, S, D, P, C, N, X = A[pick], B[pick], S[pick], D[pick], P[pick], C[pick], N[pick], X[pick]
        else:
            A = B = S = D = P = C = N = np.zeros(0, dtype=np.int64)
            X = np.zeros((0, 3), np.float32)
        if run_key is not None:
            fc.save_run(run_key, cols.digests, A, B, S, D, P, C, N, before=before)
        # contents a person marked "not a duplicate" of each other (neardup apply --decisions)
        # never share a group: their pair is dropped, and the grouping keeps them apart
        apart_rows: dict[int, set[int]] = {}
        fc.translate_decisions()
        apart = fc.not_duplicates()
        if apart and n:
            flat = cols.digests.view(f"V{cols.digests.shape[1]}").ravel()

            def row_of(d: bytes) -> int:
                r = int(np.searchsorted(flat, np.frombuffer(d, dtype=flat.dtype))[0])
                return r if r < n and cols.digest(r) == d else -1

            for da, db in apart:
                ra, rb = row_of(da), row_of(db)
                if ra >= 0 and rb >= 0:
                    apart_rows.setdefault(ra, set()).add(rb)
                    apart_rows.setdefault(rb, set()).add(ra)
        if apart_rows and len(A):
            keep_pair = np.array([y not in apart_rows.get(x, ()) for x, y in zip(A.tolist(), B.tolist())], dtype=bool)
            A, B, S, D, P, C, N, X = (v[keep_pair] for v in (A, B, S, D, P, C, N, X))
        n_verified = int(len(A))
        verified = cols.counts > 1  # byte copies are verified by their digest
        verified[A] = True
        verified[B] = True
        has_candidate |= verified
        # union-find over the rows that have a verified pair, not over every row
        nodes = np.unique(np.concatenate([A, B]))
        uf = UnionFind(len(nodes))
        for x, y in zip(np.searchsorted(nodes, A).tolist(), np.searchsorted(nodes, B).tolist()):
            uf.union(x, y)
        comps = [[int(nodes[i]) for i in c] for c in uf.components().values()]
        member_rows = sorted({r for c in comps for r in c})
        dup_rows = np.flatnonzero(cols.counts > 1).tolist()
        need_paths = sorted(set(member_rows) | set(dup_rows))
        by_digest = fc.run_files([cols.digest(r) for r in need_paths])
        # the files of one content, best first: the one a group keeps, when its image wins
        files_of_row = {r: sorted((FileFacts(f.path, f.size, f.mtime_ns, root_index(f.path, paths))
                                   for f in by_digest[cols.digest(r)]), key=file_preference) for r in need_paths}
        paths_of_row = {r: [f.path for f in fs] for r, fs in files_of_row.items()}
        del by_digest
        facts = fc.fetch([cols.digest(r) for r in need_paths], ("quality", "width", "height", "format"))
        quality = dict(zip(need_paths, facts["quality"].copy()))
        image_of_row = {r: (int(w), int(h), str(f)) for r, w, h, f in
                        zip(need_paths, facts["width"].tolist(), facts["height"].tolist(), facts["format"].tolist())}
        scores: dict[int, float] = {}
        resaved: dict[int, str] = {}  # members found to be re-saves of another: what was found
        encoding: dict[int, float] = {}  # each member's encoding value, as the lineage check left it
        n_measured = _settle_keepers(comps, quality, scores, dict(zip(need_paths, facts["width"].tolist())),
                                     dict(zip(need_paths, facts["height"].tolist())),
                                     dict(zip(need_paths, facts["format"].tolist())), paths_of_row, fc, cols,
                                     threads=threads, max_pixels=opts.max_pixels,
                                     order_key=lambda r: file_preference(files_of_row[r][0]), notes=resaved, encoding=encoding)
        del facts
        # an edge's evidence is its index in the pair columns until a group reports it
        edges: dict[int, dict[int, tuple[bool, object]]] = {}
        strong_edge = ((S == Stage.HASH) & (D <= params.strong_threshold)).tolist()
        for k, (x, y) in enumerate(zip(A.tolist(), B.tolist())):
            edges.setdefault(x, {})[y] = (strong_edge[k], k)
            edges.setdefault(y, {})[x] = (strong_edge[k], k)

        def evidence(ev: object) -> dict[str, object]:
            if isinstance(ev, int):
                return _evidence(int(S[ev]), int(D[ev]), int(P[ev]), float(C[ev]), float(N[ev]), X[ev])
            return ev  # type: ignore[return-value]

        def rank(r: int) -> tuple:
            return (-round(scores[r], 6), file_preference(files_of_row[r][0]))

        def verify_pair(k: int, r: int) -> object | None:
            a, b = min(k, r), max(k, r)
            if b in apart_rows.get(a, ()):
                return None
            ver = verify_batch(np.array([a]), np.array([b]), np.array([-1]), fetch=fetch, flags=flags,
                               params=params, load_sigs=load_sigs, crop_cache=crops)
            extra = np.full(3, np.nan, np.float32)
            if not len(ver) and thorough is not None:
                got = thorough.verify_one(a, b)
                if got is None:
                    return None
                ver, extra = got
            if not len(ver):
                return None
            return _evidence(int(ver.stage[0]), int(ver.d256[0]), -1, float(ver.colour[0]), float(ver.ncc[0]), extra)

        groups: list[Group] = []
        for comp in comps:
            for keeper, rows_in, attach in guarded_groups(comp, edges, rank, verify_pair, apart_rows):
                groups.append(_make_group(keeper, rows_in, attach, files_of_row, image_of_row, quality, cols, evidence,
                                          paths, resaved, encoding))
        in_comp = set(member_rows)
        for r in dup_rows:
            if r not in in_comp:
                groups.append(_make_group(r, [r], {}, files_of_row, image_of_row, quality, cols, evidence, paths, {}, {}))
        groups.sort(key=lambda g: (-len(g.members), g.keep))
        if thorough is not None:
            thorough.close()
    failures.sort(key=lambda f: f.path)
    stats = {
        "images": n_listed + sum(1 for f in failures if f.stage == "scan"),
        "read": n_read,
        "worker_restarts": pool_stats.get("pool_restarts", 0),
        "decoded": n_decoded,
        "from_cache": n_cached,
        "failed": len(failures),
        "unique_contents": n,
        "candidate_pairs": n_cand,  # distinct pairs of contents the search put forward
        "candidate_hits": n_hits,  # what it found, counting a pair once per code that found it
        "searched_contents": int(len(new_rows)) if n > 1 else 0,
        "reused_pairs": n_reused,
        **({"embedding_pairs": thorough.n_candidates, "local_checks": thorough.n_local} if thorough else {}),
        "verified_pairs": n_verified,
        "detail_checks": n_measured,
        "groups": len(groups),
        "duplicates": sum(len(g.members) - 1 for g in groups),
        "exact_copies": int(cols.counts.sum()) - n,  # files whose bytes another listed file has
        "skipped_not_images": tally.skipped,  # passed over by name (a known non-image extension)
        # images at each step, each a subset of the one before: what the review page draws
        "funnel": {"images": n_listed + sum(1 for f in failures if f.stage == "scan"),
                   "read": int(cols.counts.sum()),
                   "with_candidates": int(cols.counts[has_candidate].sum()) if n else 0,
                   "verified": int(cols.counts[verified].sum()) if n else 0,
                   "in_groups": sum(len(g.members) for g in groups), "groups": len(groups)},
        "settings": {"mode": opts.mode, "digest": DIGEST, "radius": opts.radius, "hash_threshold": opts.hash_threshold,
                     "crop_ncc": opts.crop_ncc,
                     **({"model": spec.model_id, "knn_threshold": opts.knn_threshold, "similar": opts.similar}
                        if spec else {})},
        "stages": clock.stages,
    }
    roots = [Root(p, p if is_remote(p) else os.path.abspath(p)) for p in paths]
    return ScanResult(groups, failures, stats, roots, os.getcwd())


def candidate_batches(cols: SearchColumns, fresh: np.ndarray, *, radius: int, threads: int = 1,
                      searched: Callable[[int], None] | None = None) -> Iterator[PairBatch]:
    """Every pair within ``radius`` that involves a ``fresh`` row, exactly (pairs of two rows
    that are not fresh were found by an earlier run and are not searched again).

    A row is indexed by its canonical full-frame code and the other orientations it might
    take; it queries with its full frame, its centre window and the centre window in every
    alternative orientation.  The fresh rows query everything; the others query, with their
    centre windows, an index of the fresh rows only (a window finds a frame, not the reverse).
    A pair may come more than once (from both ends, or by several codes).  ``searched(k)`` is
    told as each block of ``k`` query rows is done.
    """
    n = len(cols.p64)
    step = SEARCH_BLOCK

    def queries(index: MultiIndex, rows: np.ndarray, *, full_frame: bool) -> Iterator[PairBatch]:
        alt_of = np.isin(cols.alt_rows, rows)
        for s in range(0, len(rows), step):
            blk = rows[s : s + step]
            sel = alt_of & (cols.alt_rows >= blk[0]) & (cols.alt_rows <= blk[-1])
            qc = np.concatenate([*([cols.p64[blk]] if full_frame else []), cols.c64[blk], cols.alt_c64[sel]])
            qi = np.concatenate([*([blk] if full_frame else []), blk, cols.alt_rows[sel]])
            yield from index.query(qc, qi, threads=threads)
            if searched is not None:
                searched(len(blk))

    new_rows = np.flatnonzero(fresh)
    if n < 2 or not len(new_rows):
        return
    index = MultiIndex(np.concatenate([cols.p64, cols.alt_p64]),
                       np.concatenate([np.arange(n, dtype=np.int64), cols.alt_rows]), radius=radius)
    yield from queries(index, new_rows, full_frame=True)
    del index
    if len(new_rows) < n:
        alt_new = np.isin(cols.alt_rows, new_rows)
        index = MultiIndex(np.concatenate([cols.p64[new_rows], cols.alt_p64[alt_new]]),
                           np.concatenate([new_rows, cols.alt_rows[alt_new]]), radius=radius)
        yield from queries(index, np.flatnonzero(~fresh), full_frame=False)


def _run_key(paths: list[str], opts: ScanOptions) -> str:
    """What makes an earlier run's verified pairs reusable: the same roots, features and
    verification settings (fast mode; thorough mode's k-NN neighbours change with every image)."""
    import hashlib

    parts = [FEATURE_VERSION, f"r{opts.radius}", f"t{opts.hash_threshold}", f"c{opts.crop_ncc}", *sorted(paths)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _member(digests: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Which rows of sorted ``digests`` (n, 16) are among sorted ``known`` (k, 16)."""
    if not len(known) or not len(digests):
        return np.zeros(len(digests), dtype=bool)
    a = np.ascontiguousarray(digests).view(f"V{digests.shape[1]}").ravel()
    b = np.ascontiguousarray(known).view(f"V{known.shape[1]}").ravel()
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return b[pos] == a


#: version of the keeper check's measurement (features.decode.native_softness)
DETAIL_VERSION = "detail-1"
#: how a cached lineage verdict was found: the rival's own table in the member's pixels, or
#: some JPEG's in a lossless member's, or the JPEG a lossless rival's pixels came from
LINEAGE_RIVAL, LINEAGE_JPEG, LINEAGE_SIBLING = 1, 2, 3


def _settle_keepers(comps: list[list[int]], quality: dict[int, np.ndarray], scores: dict[int, float],  # noqa: C901 - the keeper's readers as closures over the run's columns; moves to group/ (issue 17)
                    width: dict[int, int],
                    height: dict[int, int], fmt: dict[int, str], paths_of_row: dict[int, list[str]], fc: FeatureCache,
                    cols: SearchColumns, *, threads: ThreadPoolExecutor, max_pixels: int,
                    order_key: Callable[[int], Any], notes: dict[int, str], encoding: dict[int, float]) -> int:
    """Measure the detail and read the lineage the keeper choice turns on (group/keeper.py), in
    threads, cached by content; fills in ``quality``'s softness, every member's keeper score and,
    for members found to be re-saves, ``notes`` saying so.  Returns the number of members
    measured."""
    from ..features.decode import jpeg_scale, native_softness
    from ..features.jpeg import ijg_table, read_header
    from ..features.lineage import LINEAGE_VERSION, block_coefficients, carries_table, primary_quality
    from ..sources import ReadError, read_bytes

    contests = [Contest(c, np.stack([quality[r] for r in c]),
                        np.array([max(width[r], height[r]) for r in c]), np.zeros(len(c), bool))
                for c in comps]
    def scale_of(r: int, side: int) -> int:
        return jpeg_scale(width[r], height[r], side) if fmt[r] in ("JPEG", "MPO") else 1

    def one(r: int, side: int) -> tuple[float, int] | None:
        for path in paths_of_row.get(r, []):
            try:
                return native_softness(read_bytes(path), min_side=side, max_pixels=max_pixels)
            except (ReadError, DecodeError) as e:  # changed or gone since the scan: try another copy, else no proof
                logger.info("keeper detail check: %s: %s; trying another copy", path, e)
                continue
        return None

    def measure(asks: Iterable[tuple[int, int]]) -> dict[int, tuple[float, int] | None]:
        asks = list(asks)
        keys = [(cols.digest(r), scale_of(r, side)) for r, side in asks]
        known = fc.get_detail(keys, DETAIL_VERSION)
        out: dict[int, tuple[float, int] | None] = {}
        todo = []
        for (r, side), key in zip(asks, keys):
            if key in known:
                out[r] = (known[key], key[1])
            else:
                todo.append((r, side))
        if todo:
            rows = []
            for (r, _), got in zip(todo, threads.map(lambda a: one(*a), todo)):
                out[r] = got
                if got is not None:
                    rows.append((cols.digest(r), DETAIL_VERSION, got[1], got[0]))
            fc.put_detail(rows)
        return out

    def first_bytes(r: int) -> tuple[str, bytes] | None:
        for path in paths_of_row.get(r, []):
            try:
                return path, read_bytes(path)
            except ReadError:  # changed or gone since the scan: try another copy
                continue
        return None

    def read_lineage(r: int, rival: int) -> tuple[float, int]:
        """(the encoding value ``r`` was made from, or -1; LINEAGE_RIVAL / LINEAGE_JPEG)."""
        got = first_bytes(r)
        coeffs = block_coefficients(got[1], max_pixels=max_pixels) if got else []
        if not coeffs:
            return -1.0, 0
        if fmt[rival] in ("JPEG", "MPO"):
            theirs = first_bytes(rival)
            hdr = read_header(theirs[1]) if theirs else None
            if hdr is not None and hdr.table is not None and carries_table(coeffs, hdr.table):
                return float(hdr.quality), LINEAGE_RIVAL
        lossless = QUALITY_FIELDS.index("lossless")
        if quality[r][lossless]:
            q = primary_of(r, coeffs)
            if q:
                return float(q), LINEAGE_JPEG
        elif quality[rival][lossless]:
            # a lossless rival made from some JPEG: a JPEG member holding that JPEG's table
            # is its sibling, re-saved from the same source, not the better copy
            q = primary_of(rival)
            if q and carries_table(coeffs, ijg_table(q)):
                return float(q), LINEAGE_SIBLING
        return -1.0, 0

    primary: dict[int, int] = {}  # lossless row -> the JPEG quality its pixels came from (0: none)

    def primary_of(r: int, coeffs: list[Any] | None = None) -> int:
        """A lossless member's earlier JPEG quality, read once per run: a sibling check asks for
        the rival that was itself just found to be a re-save."""
        if r not in primary:
            if coeffs is None:
                got = first_bytes(r)
                coeffs = block_coefficients(got[1], max_pixels=max_pixels) if got else []
            primary[r] = primary_quality(coeffs) if coeffs else 0
        return primary[r]

    def lineage(asks: Iterable[tuple[int, int]]) -> dict[tuple[int, int], tuple[float | None, str]]:
        asks = list(asks)
        keys = [(cols.digest(r), cols.digest(rival)) for r, rival in asks]
        known = fc.get_lineage(keys, LINEAGE_VERSION)
        todo = [a for a, k in zip(asks, keys) if k not in known]
        fresh = dict(zip(todo, threads.map(lambda a: read_lineage(*a), todo)))
        fc.put_lineage([(cols.digest(r), cols.digest(rival), LINEAGE_VERSION, *fresh[(r, rival)]) for r, rival in todo])
        out: dict[tuple[int, int], tuple[float | None, str]] = {}
        for a, k in zip(asks, keys):
            made_from, kind = known[k] if k in known else fresh[a]
            if made_from < 0:
                out[a] = (None, "")
            elif kind == LINEAGE_RIVAL:
                out[a] = (made_from, f"its pixels hold the JPEG quantisation of {paths_of_row[a[1]][0]!r} (q~"
                                     f"{made_from:.0f}): re-saved from it")
            elif kind == LINEAGE_SIBLING:
                out[a] = (made_from, f"its pixels hold the JPEG blocks (q~{made_from:.0f}) that "
                                     f"{paths_of_row[a[1]][0]!r} holds: both re-saved from one JPEG")
            else:
                out[a] = (made_from, f"a lossless file whose pixels hold JPEG blocks of quality ~{made_from:.0f}: "
                                     "re-saved from a JPEG")
        return out

    n = settle(contests, measure, order_key, lineage)
    for c in contests:
        scores.update(zip(c.rows, provisional_scores(c).tolist()))
        for j, r in enumerate(c.rows):
            quality[r] = c.quality[j]
        encoding.update(zip(c.rows, c.encoding.tolist()))
        for j, found in c.lineage.items():
            if found.made_from is not None:
                notes[c.rows[j]] = found.how
    return n


class _CropCache:
    """Crop-test correlations in the feature cache, by digest pair: the dear part of
    verification is paid once per pair of contents, not once per run."""

    VERSION = f"{FEATURE_VERSION}:crop-1"

    def __init__(self, fc: FeatureCache, cols: SearchColumns) -> None:
        self.fc, self.cols = fc, cols

    def _pairs(self, a: np.ndarray, b: np.ndarray) -> list[tuple[bytes, bytes]]:
        return [(self.cols.digest(x), self.cols.digest(y)) for x, y in zip(a.tolist(), b.tolist())]

    def get(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pairs = self._pairs(a, b)
        known = self.fc.get_crops(pairs, self.VERSION)
        return np.array([known.get(p, np.nan) for p in pairs], dtype=np.float32)

    def put(self, a: np.ndarray, b: np.ndarray, ncc: np.ndarray) -> None:
        self.fc.put_crops([(x, y, self.VERSION, float(v)) for (x, y), v in zip(self._pairs(a, b), ncc.tolist())])


def _evidence(stage: int, d256: int, p64: int, colour: float, ncc: float,
              extra: np.ndarray | None = None) -> dict[str, object]:
    ev: dict[str, object] = {"stage": STAGE_NAMES[stage], "hash256": d256, "colour": round(colour, 2)}
    if p64 >= 0:
        ev["hash64"] = p64
    if not np.isnan(ncc):
        ev["crop_ncc"] = round(ncc, 4)
    if extra is not None:
        for name, v in zip(("cosine", "inliers", "aligned_ncc"), extra.tolist()):
            if not np.isnan(v):
                ev[name] = int(v) if name == "inliers" else round(float(v), 4)
    return ev


def _reason(keep: QualityFacts, others: list[QualityFacts], keep_encoding: float, other_encodings: list[float]) -> str:
    """Which facts put the keeper first; encodings as the lineage check left them (a re-save's
    format or quality does not count)."""
    bits = []
    if all(keep.pixels > o.pixels for o in others):
        bits.append("most pixels")
    if keep.lossless and keep_encoding >= 100 and any(e < 100 for e in other_encodings):
        bits.append("lossless")
    elif keep.jpeg_quality and all(keep_encoding > e for e in other_encodings):
        bits.append(f"highest JPEG quality (~{keep.jpeg_quality})")
    if keep.softness < 1.5 and any(o.softness >= keep.softness + 0.15 for o in others):
        bits.append("more real detail (others upscaled or blurred)")
    if keep.colourfulness > COLOURFUL and any(o.colourfulness <= COLOURFUL for o in others):
        bits.append("in colour")
    if keep.border < 0.01 and any(o.border >= 0.01 for o in others):
        bits.append("no added border")
    return "best quality score: " + (", ".join(bits) if bits else "best balance of size, detail and quality")


def _make_group(keeper: int, rows: list[int], attach: dict[int, tuple[int, object]],
                files_of_row: dict[int, list[FileFacts]], image_of_row: dict[int, tuple[int, int, str]],
                quality: dict[int, np.ndarray], cols: SearchColumns,
                evidence: Callable[[object], dict[str, object]], roots: Sequence[str],
                resaved: dict[int, str], encoding: dict[int, float]) -> Group:
    kept_file = files_of_row[keeper][0]
    keep = kept_file.path
    members: list[str] = []
    pairs: list[Pair] = []
    digests: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    for r in rows:
        fs = files_of_row[r]
        width, height, fmt = image_of_row[r]
        for f in fs:
            members.append(f.path)
            digests[f.path] = cols.digest(r).hex()
            files[f.path] = {"width": width, "height": height, "bytes": f.size, "format": fmt}
        for extra in fs[1:]:
            pairs.append(Pair(fs[0].path, extra.path, "exact", distance=0))
        if r in attach:
            via, ev = attach[r]
            e: dict[str, Any] = dict(evidence(ev))
            stage = str(e["stage"])
            score = {"crop": e.get("crop_ncc"), "local": e.get("aligned_ncc"), "embedding": e.get("cosine"),
                     "similar": e.get("cosine")}.get(stage)
            pairs.append(Pair(files_of_row[via][0].path, fs[0].path, stage,
                              distance=int(e["hash256"]) if stage == "hash" else None,
                              score=float(score) if score is not None else None, evidence=e))
    copies = files_of_row[keeper][1:]
    among = (f"kept {keep!r}: {why_preferred(kept_file, copies[0], roots)}" if copies else "")
    if len(rows) == 1:
        reason = f"identical bytes; {among}"
    else:
        others = [QualityFacts.from_row(quality[r]) for r in rows if r != keeper]
        reason = _reason(QualityFacts.from_row(quality[keeper]), others, encoding[keeper],
                         [encoding[r] for r in rows if r != keeper])
        for r in rows:
            if r != keeper and r in resaved:
                reason += f"; not {files_of_row[r][0].path!r}: {resaved[r]}"
        if copies:
            reason += f"; of {len(copies) + 1} byte-identical files, {among}"
    members = [keep] + sorted(m for m in members if m != keep)
    return Group(keep, members, reason, pairs, {m: digests[m] for m in members}, {m: files[m] for m in members})
