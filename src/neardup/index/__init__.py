"""A saved collection and queries against it: "which of these new images do I already have?"

``Index.build(paths, folder)`` extracts a collection once into ``folder``: a feature cache
(``folder/cache``) and segments of memory-mapped search columns, files and multi-indexes
(index/segment.py).  ``Index.open(folder).query(paths)`` extracts only the query images and
finds, for each, its copies in the collection by the scan's own search and verification
(pipeline/search.py ``verify_candidates``), so a query answers what a scan of the collection
and the query together would pair, without listing or reading the collection again.
``add(paths)`` appends a segment of the contents the index does not hold yet.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..candidates.mih import MultiIndex, PairBatch
from ..candidates.search import keep_alike_slots, window_blocks
from ..config import Progress, ScanOptions
from ..embed.knn import KnnParams
from ..embed.model import ModelSpec
from ..errors import UsageError
from ..features.extract import FEATURE_VERSION
from ..group.explain import evidence_dict
from ..records import SearchColumns, Stage, Verified
from ..results import Failure, evidence_fields, kind_of_stage
from ..sources import check_root, configure
from ..store import FeatureCache, RunFile
from ..verify.rules import VerifyParams
from .segment import FileColumns, Segment, path_hashes, write_segment
from .thorough import embedding_candidates, index_model, prepare_rows, verify_embedding_pairs, write_embeddings

__all__ = ["Index", "QueryResult", "Match", "QueryMatches", "Added", "INDEX_FORMAT"]

INDEX_FORMAT = "neardup-index/3"
#: query frame codes up to which the collection's crop windows are compared one by one with
#: them (a pass over the windows per code); above, the windows are indexed a block at a time and
#: queried, as a scan does (benchmarks/index.py measures both)
BRUTE_WINDOW_CODES = 64


def _noop(stage: str, advance: int, total: int | None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Added:
    """What :meth:`Index.add` did: images listed, files and new contents recorded, failures."""

    images: int
    files: int
    contents: int
    failures: list[Failure]


@dataclass(frozen=True, slots=True)
class Match:
    """A copy of a query image in the collection, with the evidence a scan would give the pair."""

    path: str
    stage: str
    distance: int | None = None  # 256-bit hash distance, where the hash test decided
    score: float | None = None  # layout correlation, where the crop test decided
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "stage": self.stage, "kind": kind_of_stage(self.stage),
                **evidence_fields(self.distance, self.score, self.evidence)}


@dataclass(frozen=True, slots=True)
class QueryMatches:
    query: str
    matches: list[Match]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "matches": [m.to_dict() for m in self.matches]}


@dataclass(frozen=True, slots=True)
class QueryResult:
    """``matches.json``: each query file with its copies in the collection, failures, stats."""

    queries: list[QueryMatches]
    failures: list[Failure]
    stats: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"queries": [q.to_dict() for q in self.queries], "failures": [f.to_dict() for f in self.failures],
                "stats": self.stats}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


def _ingest_columns(paths: list[str], fc: FeatureCache, opts: ScanOptions, progress: Progress,
                    spec: ModelSpec | None = None) -> tuple[SearchColumns, list[Failure], int]:
    """Extract ``paths`` into ``fc`` (what it holds is not read again) and load their columns."""
    from ..pipeline.ingest import ingest  # noqa: PLC0415 - the extraction machinery loads on first use
    from ..pipeline.rows import load_search_columns  # noqa: PLC0415

    for p in paths:
        check_root(p)
    configure(retries=opts.retries)
    got = ingest(paths, fc, opts, spec, progress, lambda: None)
    got.failures.sort(key=lambda f: f.path)
    return load_search_columns(fc), got.failures, got.images


class Index:
    """A saved collection in ``folder`` (see the module docstring).  Open it with :meth:`open`
    or make it with :meth:`build`; it holds no open handle between calls."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder, self.meta = folder, meta
        #: what the last :meth:`add` (or :meth:`build`) did: counts, and the files it could not read
        self.added: Added | None = None
        self.segments: list[Segment] = []
        base = 0
        for s in meta["segments"]:
            seg = Segment(folder / s["name"], base)
            self.segments.append(seg)
            base += len(seg)
        self.rows = base

    # -- making and opening --------------------------------------------------------------
    @classmethod
    def build(cls, paths: Sequence[str | os.PathLike[str]], folder: str | os.PathLike[str], *,
              options: ScanOptions | None = None, progress: Progress | None = None, **overrides: object) -> Index:
        """Extract the collection under ``paths`` into a new index at ``folder`` (fast mode's
        codes; ``radius``, ``hash_threshold`` and ``crop_ncc`` are fixed for its queries)."""
        where = Path(folder)
        if (where / "index.json").exists():
            raise UsageError(f"{where} already holds an index; add to it with `neardup index add`, or choose "
                             "another --index folder")
        opts = _options(options, overrides)
        where.mkdir(parents=True, exist_ok=True)
        meta = {"format": INDEX_FORMAT, "features": FEATURE_VERSION, "mode": opts.mode, "radius": opts.radius,
                "hash_threshold": opts.hash_threshold, "crop_ncc": opts.crop_ncc, "segments": [], "roots": [],
                "created": time.time()}
        index = cls(where, meta)
        index.added = index.add(paths, options=opts, progress=progress)
        return index

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> Index:
        """The index at ``folder``, its segments memory-mapped (opening reads no column)."""
        where = Path(folder)
        try:
            meta = json.loads((where / "index.json").read_text())
        except FileNotFoundError:
            raise UsageError(f"no index at {where}; make one with `neardup index build PATH... --index {where}`") from None
        except ValueError as e:
            raise UsageError(f"{where}/index.json is damaged ({e}); build the index again") from None
        if meta.get("format") != INDEX_FORMAT:
            raise UsageError(f"{where} holds an index of format {meta.get('format')!r}, not {INDEX_FORMAT}; build it again")
        if meta.get("features") != FEATURE_VERSION:
            raise UsageError(f"{where} was built with features {meta.get('features')!r}; this neardup computes "
                             f"{FEATURE_VERSION!r}: build the index again")
        return cls(where, meta)

    @property
    def files(self) -> int:
        return sum(len(s.files) for s in self.segments)

    def _options(self, overrides: dict[str, object]) -> ScanOptions:
        return _options(None, {**overrides, **self._fixed()})

    def _fixed(self) -> dict[str, Any]:
        """The settings the index was built with, which its additions and queries keep."""
        return {"radius": self.meta["radius"], "hash_threshold": self.meta["hash_threshold"],
                "crop_ncc": self.meta["crop_ncc"], "mode": self.meta.get("mode", "fast")}

    @property
    def thorough(self) -> bool:
        return self.meta.get("mode", "fast") == "thorough"

    def add(self, paths: Sequence[str | os.PathLike[str]], *, options: ScanOptions | None = None,
            progress: Progress | None = None, **overrides: object) -> Added:
        """Add the images under ``paths``: their files are recorded (those the index holds
        already are skipped), and the contents it does not hold go into a new segment."""
        roots = [os.fspath(p) for p in paths]
        if not roots:
            raise UsageError("give at least one folder or file to add")
        opts = replace(options, **self._fixed()) if options is not None else self._options(overrides)
        spec = index_model(opts, self.folder) if self.thorough else None
        with FeatureCache(self.folder / "cache") as fc:
            cols, failures, images = _ingest_columns(roots, fc, opts, progress or _noop, spec)
            where = np.full(len(cols.digests), -1, np.int64)
            for seg in self.segments:
                local = seg.find(cols.digests)
                where[local >= 0] = seg.base + local[local >= 0]
            new = np.flatnonzero(where < 0)
            where[new] = self.rows + np.arange(len(new))
            known = [np.asarray(s.files.hashes) for s in self.segments]
            files = FileColumns()
            width = cols.digests.shape[1]
            flat = np.ascontiguousarray(cols.digests).view(f"V{width}").ravel()
            for chunk in fc.iter_run_files():
                hashes = path_hashes(f.path for _, f in chunk)
                fresh = np.ones(len(chunk), bool)
                for k in known:
                    if len(k):
                        pos = np.minimum(np.searchsorted(k, hashes), len(k) - 1)
                        fresh &= k[pos] != hashes
                rows = np.searchsorted(flat, np.frombuffer(b"".join(d for d, _ in chunk), f"V{width}"))
                keep = np.flatnonzero(fresh)
                if len(keep):
                    files.add(where[rows[keep]], [chunk[i][1] for i in keep.tolist()])
            if not len(files):
                self.added = Added(images, 0, 0, failures)
                return self.added
            adding = cols if len(new) == len(cols.digests) else cols.take(new)  # a build: no copy
            extra = None
            if spec is not None:
                from ..pipeline.rows import RowAccess  # noqa: PLC0415 - the verification machinery loads on first use

                prepare_rows(fc, cols, new, spec, opts, RowAccess(fc, cols))
                digests = adding.digests

                def extra(part: Path) -> None:
                    write_embeddings(part, fc, digests, spec)

            del cols
            name = f"seg-{len(self.segments):05d}"
            write_segment(self.folder / name, adding, files, radius=int(self.meta["radius"]), extra=extra)
        self.meta["segments"].append({"name": name, "rows": int(len(new)), "files": len(files)})
        self.meta["roots"] = sorted(set(self.meta["roots"]) | set(roots))
        self.meta["updated"] = time.time()
        tmp = self.folder / "index.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=1))
        os.replace(tmp, self.folder / "index.json")  # the new segment counts once this lands
        self.segments.append(Segment(self.folder / name, self.rows))
        self.rows += len(new)
        self.added = Added(images, len(files), int(len(new)), failures)
        return self.added

    # -- queries -----------------------------------------------------------------------------
    def query(self, paths: Sequence[str | os.PathLike[str]], *, progress: Progress | None = None,
              **overrides: object) -> QueryResult:
        """Each image under ``paths`` with its copies in the collection (byte copies and every
        pair the scan's search and verification accept), best evidence first."""
        from ..pipeline.rows import RowAccess  # noqa: PLC0415 - the verification machinery loads on first use
        from ..pipeline.search import Found, verify_candidates  # noqa: PLC0415

        roots = [os.fspath(p) for p in paths]
        if not roots:
            raise UsageError("give at least one image or folder to query")
        opts = self._options(overrides)
        progress = progress or _noop
        t0 = time.perf_counter()
        spec = index_model(opts, self.folder) if self.thorough else None
        with FeatureCache(self.folder / "cache") as fc, \
                ThreadPoolExecutor(opts.worker_count, "neardup-query") as threads:
            q, failures, images = _ingest_columns(roots, fc, opts, progress, spec)
            t_extract = time.perf_counter() - t0
            exact, cands = self._candidates(q, opts, progress)
            knn = KnnParams(threshold=opts.knn_threshold)
            emb: list[tuple[np.ndarray, np.ndarray, float]] = []
            if spec is not None and len(q.digests):
                vectors = fc.fetch_embeddings([q.digest(r) for r in range(len(q.digests))], spec.model_id)
                above, near = embedding_candidates(self.segments, vectors.astype(np.float32), knn)
                emb = [(*above, knn.threshold), (*near, knn.mutual_floor)]
            every = np.concatenate([cands.b, *(r for _, r, _ in emb)])
            compact, q_row, c_row = self._compact(q, every)
            batches = [PairBatch(np.minimum(q_row[cands.a], c_row[cands.b]), np.maximum(q_row[cands.a], c_row[cands.b]),
                                 cands.distance)] if len(cands) else []
            batches = [PairBatch(b.a[b.a != b.b], b.b[b.a != b.b], b.distance[b.a != b.b]) for b in batches]
            access = RowAccess(fc, compact)
            found = Found(has_candidate=np.zeros(len(compact.digests), bool))
            params = VerifyParams(hash_threshold=opts.hash_threshold, crop_ncc=opts.crop_ncc)
            verify_candidates(batches, access, params, threads=threads, progress=progress, found=found)
            extra: list[tuple[Verified, np.ndarray]] = []
            if spec is not None:
                accepted = {(int(x), int(y)) for v in found.verified for x, y in zip(v.a, v.b)}
                pairs = []
                for qr, gr, floor in emb:
                    a, b = np.minimum(q_row[qr], c_row[gr]), np.maximum(q_row[qr], c_row[gr])
                    keep = np.array([x != y and (x, y) not in accepted for x, y in zip(a.tolist(), b.tolist())], bool)
                    key = np.unique(a[keep] * len(compact.digests) + b[keep]) if keep.any() else np.zeros(0, np.int64)
                    pairs.append((key // len(compact.digests), key % len(compact.digests), floor))
                extra = verify_embedding_pairs(fc, compact, spec, opts, access, pairs, progress)
            every_pair: list[tuple[Verified, np.ndarray | None]] = [(v, None) for v in found.verified]
            queries = self._matches(fc, q, exact, q_row, c_row, every_pair + list(extra))
        stats = {"images": images, "queries": len(queries), "failed": len(failures),
                 "with_matches": sum(1 for x in queries if x.matches),
                 "matches": sum(len(x.matches) for x in queries), "candidate_pairs": found.candidates,
                 "index_contents": self.rows, "index_files": self.files,
                 "seconds": {"extract": round(t_extract, 3), "total": round(time.perf_counter() - t0, 3)},
                 "settings": {"radius": opts.radius, "hash_threshold": opts.hash_threshold, "crop_ncc": opts.crop_ncc,
                              "features": FEATURE_VERSION, "index": str(self.folder)}}
        return QueryResult(queries, failures, stats)

    def _candidates(self, q: SearchColumns, opts: ScanOptions, progress: Progress
                    ) -> tuple[list[tuple[int, int]], PairBatch]:
        """The byte copies ``(query row, global row)`` and the candidate pairs ``a`` = query row,
        ``b`` = global row of the collection, by the scan's codes (candidates/search.py): the
        query's frames, centres and crop windows against the collection's frames, its frames
        against the collection's centres and crop windows."""
        exact: list[tuple[int, int]] = []
        parts: list[PairBatch] = []
        qn = len(q.digests)
        qrows = np.arange(qn, dtype=np.int64)
        frame_codes = np.concatenate([q.p64, q.alt_p64])
        frame_ids = np.concatenate([qrows, q.alt_rows])
        probe_codes = np.concatenate([frame_codes, q.c64, q.alt_c64])
        probe_ids = np.concatenate([frame_ids, qrows, q.alt_rows])
        with_windows = qrows[~q.low_info] if q.windows.ndim == 2 and len(q.windows) == qn else qrows[:0]
        per = q.windows.shape[1] if len(with_windows) else 0
        win_codes = q.windows[with_windows].ravel() if per else np.zeros(0, np.uint64)
        win_ids = np.repeat(with_windows, per)
        threads = opts.worker_count
        for seg in self.segments:
            local = seg.find(q.digests)
            exact += [(int(r), seg.base + int(x)) for r, x in zip(qrows[local >= 0], local[local >= 0])]
            # (query row, local row) pairs: the query's ids and the segment's name different rows
            found = [*seg.frames.query(np.concatenate([probe_codes, win_codes]), np.concatenate([probe_ids, win_ids]),
                                       threads=threads, by_query=True),
                     *seg.centres.query(frame_codes, frame_ids, threads=threads, by_query=True),
                     *_window_pairs(seg, frame_codes, frame_ids, radius=opts.radius, threads=threads)]
            for pb in found:
                batch = keep_alike_slots(pb, q.slot[pb.a], np.asarray(seg.cols.slot)[pb.b])
                parts.append(PairBatch(batch.a, batch.b + seg.base, batch.distance))
            progress("search", len(seg), self.rows)
        if not parts:
            return exact, PairBatch(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int16))
        return exact, PairBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("a", "b", "distance")))

    def _segment_of(self, rows: np.ndarray) -> np.ndarray:
        bases = np.array([s.base for s in self.segments], np.int64)
        return np.searchsorted(bases, rows, side="right") - 1

    def _compact(self, q: SearchColumns, named: np.ndarray) -> tuple[SearchColumns, np.ndarray, np.ndarray]:
        """The query rows and the collection rows the candidates name, as one small set of
        columns sorted by digest (what verification reads), and where each went: ``q_row[i]``
        for query row i, ``c_row[g]`` for global row g (a dict-free lookup over the few rows)."""
        rows = np.unique(named)
        seg_of = self._segment_of(rows)
        picked = [self.segments[s].cols.take(rows[seg_of == s] - self.segments[s].base) for s in np.unique(seg_of)]
        both = _concat([q, *picked])
        digests = np.ascontiguousarray(both.digests).view(f"V{both.digests.shape[1]}").ravel()
        uniq, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
        compact = both.take(first)
        q_row = inverse[: len(q.digests)].astype(np.int64)
        c_row = np.full(self.rows + 1, -1, np.int64) if len(rows) else np.zeros(0, np.int64)
        order = np.concatenate([rows[seg_of == s] for s in np.unique(seg_of)]) if len(rows) else rows
        if len(rows):
            c_row[order] = inverse[len(q.digests):]
        return compact, q_row, c_row

    def _matches(self, fc: FeatureCache, q: SearchColumns, exact: list[tuple[int, int]], q_row: np.ndarray,
                 c_row: np.ndarray, verified: Sequence[tuple[Verified, np.ndarray | None]]) -> list[QueryMatches]:
        """Each query file with its matches: byte copies first, then by stage and distance."""
        by_query: dict[int, dict[int, Match]] = {}
        for r, g in exact:
            by_query.setdefault(r, {})[g] = Match("", Stage.EXACT.label, 0)
        query_of: dict[int, list[int]] = {}
        for r, cr in enumerate(q_row.tolist()):
            query_of.setdefault(cr, []).append(r)
        coll_of: dict[int, list[int]] = {}
        for g in np.flatnonzero(c_row >= 0).tolist():
            coll_of.setdefault(int(c_row[g]), []).append(g)
        for v, extra in verified:
            for k in range(len(v)):
                ev = evidence_dict(int(v.stage[k]), int(v.d256[k]), int(v.p64[k]), float(v.colour[k]), float(v.ncc[k]),
                                   extra[k] if extra is not None else None)
                stage = Stage(int(v.stage[k])).label
                score = {"crop": ev.get("crop_ncc"), "local": ev.get("aligned_ncc"), "embedding": ev.get("cosine")}
                got = score.get(stage)
                match = Match("", stage, int(v.d256[k]) if stage == "hash" else None,
                              float(got) if isinstance(got, (int, float)) else None, ev)
                for x, y in ((int(v.a[k]), int(v.b[k])), (int(v.b[k]), int(v.a[k]))):
                    for r in query_of.get(x, ()):
                        for g in coll_of.get(y, ()):
                            by_query.setdefault(r, {}).setdefault(g, match)
        files = fc.run_files([q.digest(r) for r in range(len(q.digests))])
        out: list[QueryMatches] = []
        for r in range(len(q.digests)):
            found_here = sorted(by_query.get(r, {}).items(),
                                key=lambda gm: (gm[1].stage != "exact", gm[1].distance or 0, -(gm[1].score or 0), gm[0]))
            matches = [replace(m, path=f.path) for g, m in found_here for f in self._files_of(g)]
            for f in files.get(q.digest(r), []):
                out.append(QueryMatches(f.path, [m for m in matches if m.path != f.path]))
        out.sort(key=lambda x: x.query)
        return out

    def _files_of(self, row: int) -> list[RunFile]:
        out: list[RunFile] = []
        for seg in self.segments:
            out += seg.files.of_row(row)
        return out


def _window_pairs(seg: Segment, codes: np.ndarray, ids: np.ndarray, *, radius: int, threads: int
                  ) -> Iterator[PairBatch]:
    """The segment's crop windows and tilted frames (not a low-information row's) within
    ``radius`` of the query frame ``codes``: compared one by one when the codes are few, else
    indexed a block of rows at a time as a scan does.  Pairs are (query id, local row)."""
    win = seg.cols.windows
    if not len(codes) or win.ndim != 2 or not win.shape[1]:
        return
    for block, block_ids, _ in window_blocks(win, np.flatnonzero(~np.asarray(seg.cols.low_info))):
        if len(codes) <= BRUTE_WINDOW_CODES:
            for code, qid in zip(codes.tolist(), ids.tolist()):
                dist = np.bitwise_count(block ^ np.uint64(code)).astype(np.int16)
                hit = np.flatnonzero(dist <= radius)
                if len(hit):
                    yield PairBatch(np.full(len(hit), qid, np.int64), block_ids[hit], dist[hit])
        else:
            yield from MultiIndex(block, block_ids, radius=radius).query(codes, ids, threads=threads, by_query=True)


def _options(options: ScanOptions | None, overrides: dict[str, object]) -> ScanOptions:
    opts = (options or ScanOptions()).with_overrides(**overrides)
    opts.check()
    if opts.reference or opts.similar or opts.model is not None:
        raise UsageError("an index holds one collection's codes (and, in thorough mode, the default model's "
                         "embeddings): --reference, --similar and --model do not apply to it (scan with them instead)")
    return opts


def _concat(parts: list[SearchColumns]) -> SearchColumns:
    """Several SearchColumns end to end, alternatives renumbered (rows not sorted)."""
    base = np.cumsum([0] + [len(p.digests) for p in parts])
    return SearchColumns(
        np.concatenate([p.digests for p in parts]), np.concatenate([p.counts for p in parts]),
        np.concatenate([p.p64 for p in parts]), np.concatenate([p.c64 for p in parts]),
        np.concatenate([p.alt_rows + b for p, b in zip(parts, base)]), np.concatenate([p.alt_p64 for p in parts]),
        np.concatenate([p.alt_c64 for p in parts]), np.concatenate([p.low_info for p in parts]),
        np.concatenate([p.colourful for p in parts]), windows=np.concatenate([p.windows for p in parts]),
        aspect=np.concatenate([p.aspect for p in parts]), slot=np.concatenate([p.slot for p in parts]))
