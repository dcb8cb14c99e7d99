"""The scan pipeline: list -> extract (cached) -> candidates -> verify -> group -> result."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..cache.sqlite import FeatureCache, default_cache_dir
from ..candidates.mih import MultiIndex
from ..errors import UsageError
from ..features.extract import is_low_info
from ..features.quality import QUALITY_FIELDS, QualityFacts, quality_score
from ..group.unionfind import UnionFind, guarded_groups
from ..sources.local import FileEntry, ScanProblem, walk
from ..verify.rules import STAGE_NAMES, SeenPairs, VerifyParams, verify_batch
from .extract import batched, extract_many
from .result import Failure, Group, Pair, ScanResult
from .stats import StageClock

__all__ = ["scan", "ScanOptions", "Progress"]

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, advance, total)``: called as work completes; the CLI draws bars with it."""

_NO_CACHE = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOptions:
    radius: int = 8
    hash_threshold: int = 40
    crop_ncc: float = 0.955
    workers: int = 0  # 0: one per core
    max_pixels: int = 200_000_000
    batch: int = 512

    def check(self) -> None:
        if not 0 <= self.radius <= 16:
            raise UsageError(f"--radius must be between 0 and 16 bits of 64, got {self.radius}")
        if not 0 <= self.hash_threshold <= 96:
            raise UsageError(f"--threshold must be between 0 and 96 bits of 256, got {self.hash_threshold}")
        if not 0.0 < self.crop_ncc <= 1.0:
            raise UsageError(f"crop correlation must be in (0, 1], got {self.crop_ncc}")
        if self.workers < 0:
            raise UsageError(f"--workers must be 0 (one per core) or more, got {self.workers}")
        if self.max_pixels < 1:
            raise UsageError(f"--max-pixels must be positive, got {self.max_pixels}")


def _entries(paths: Sequence[str], failures: list[Failure]) -> Iterator[FileEntry]:
    for root in paths:
        for item in walk(str(root)):
            if isinstance(item, ScanProblem):
                failures.append(Failure(item.path, "scan", item.error, item.reason))
            else:
                yield item


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
    cache_dir = default_cache_dir() if cache is _NO_CACHE else cache
    with FeatureCache(cache_dir) as fc:  # type: ignore[arg-type]
        return _run([os.fspath(p) for p in paths], fc, opts, progress or (lambda *a: None))


def _run(paths: list[str], fc: FeatureCache, opts: ScanOptions, progress: Progress) -> ScanResult:
    clock = StageClock()
    failures: list[Failure] = []
    run_paths: list[str] = []
    run_digests: list[bytes] = []
    n_decoded = n_cached = n_listed = 0
    workers = opts.workers or (os.cpu_count() or 1)

    # -- scan + extract, streamed: cache hits are recorded as the pool pulls the misses ------
    def misses() -> Iterator[tuple[str, int, int]]:
        nonlocal n_listed, n_cached
        for batch in batched(_entries(paths, failures), opts.batch):
            n_listed += len(batch)
            known = fc.lookup_files([(e.path, e.size, e.mtime_ns) for e in batch])
            hits = 0
            for e in batch:
                rec = known.get(e.path)
                if rec is None:
                    yield (e.path, e.size, e.mtime_ns)
                    continue
                hits += 1
                n_cached += 1
                if rec.digest is not None:
                    run_paths.append(e.path)
                    run_digests.append(rec.digest)
                else:
                    failures.append(Failure(e.path, rec.error_stage or "decode", rec.error or "", rec.error_reason or ""))
            progress("extract", hits, None)

    with clock.stage("extract"):
        for outs in extract_many(misses(), workers=workers, max_pixels=opts.max_pixels, cache_file=fc.path):
            fc.put_batch(
                [(o.path, o.size, o.mtime_ns, o.digest, o.error_stage, o.error_reason, o.error) for o in outs],
                [o.features for o in outs if o.features is not None],
            )
            for o in outs:
                if o.digest is None:
                    failures.append(Failure(o.path, o.error_stage or "decode", o.error or "", o.error_reason or ""))
                else:
                    run_paths.append(o.path)
                    run_digests.append(o.digest)
                    n_decoded += o.features is not None
                    n_cached += o.features is None
            progress("extract", len(outs), None)
    clock.workers_peak("extract")

    # -- load columns for unique contents ------------------------------------------------
    with clock.stage("load"):
        # row ids in digest order, so they do not depend on which worker finished first
        digests = sorted(set(run_digests))
        uniq = {d: i for i, d in enumerate(digests)}
        row_of_path = np.fromiter((uniq[d] for d in run_digests), dtype=np.int64, count=len(run_digests))
        del uniq
        run_digests.clear()
        cols = fc.load_columns(digests)
        cols["low_info"] = np.asarray(is_low_info(cols["energy"], cols["content_side"]))
        q = cols["quality"]
        cols["colourful"] = q[:, QUALITY_FIELDS.index("colourfulness")] > 12.0
        n = len(digests)
        order = np.argsort(row_of_path, kind="stable")
        paths_of_row: list[list[str]] = [[] for _ in range(n)]
        for i in order:
            paths_of_row[int(row_of_path[i])].append(run_paths[int(i)])
        for ps in paths_of_row:
            ps.sort()
        del row_of_path
        run_paths.clear()

    params = VerifyParams(hash_threshold=opts.hash_threshold, crop_ncc=opts.crop_ncc)

    def load_sigs(rows: np.ndarray) -> np.ndarray:
        return fc.load_signatures([digests[int(r)] for r in rows])

    # -- candidates, streamed into verification ----------------------------------------
    va: list[np.ndarray] = []
    vb: list[np.ndarray] = []
    vstage: list[np.ndarray] = []
    vd: list[np.ndarray] = []
    vp: list[np.ndarray] = []
    vc: list[np.ndarray] = []
    vn: list[np.ndarray] = []
    n_cand = 0
    t_verify = 0.0
    with clock.stage("candidates"):
        if n > 1:
            # index: each row's canonical code, plus the other orientations it might take;
            # queries: the canonical full frame and centre window (every alternative for the
            # centre window, whose orientation is decided by the full frame)
            rows = np.arange(n, dtype=np.int64)
            canon = cols["canon"].astype(np.int64)
            alt_rows, alt_vars = np.nonzero((cols["alt_mask"][:, None] >> np.arange(8, dtype=np.uint8)) & 1)
            full = cols["p64"][rows, canon]
            index = MultiIndex(np.concatenate([full, cols["p64"][alt_rows, alt_vars]]),
                               np.concatenate([rows, alt_rows]), radius=opts.radius)
            qc = np.concatenate([full, cols["c64"][rows, canon], cols["c64"][alt_rows, alt_vars]])
            qi = np.concatenate([rows, rows, alt_rows])
            del cols["c64"], full  # only the query codes are needed from here on
            cropped = SeenPairs()  # pairs already given the (dear) crop test
            for pb in index.query(qc, qi, threads=workers):
                _, firsts = np.unique(pb.a * n + pb.b, return_index=True)
                a, b = pb.a[firsts], pb.b[firsts]
                dist = pb.distance[firsts]
                n_cand += len(a)
                progress("candidates", len(a), None)
                t0 = time.perf_counter()
                ver = verify_batch(a, b, dist, cols, params, load_sigs, crop_done=cropped, n_rows=n)
                t_verify += time.perf_counter() - t0
                if len(ver):
                    for acc, col in ((va, ver.a), (vb, ver.b), (vstage, ver.stage), (vd, ver.d256),
                                     (vp, ver.p64), (vc, ver.colour), (vn, ver.ncc)):
                        acc.append(col)
    clock.split("candidates", "verify", t_verify)

    # -- group ------------------------------------------------------------------------
    with clock.stage("group"):
        if va:
            A, B = np.concatenate(va), np.concatenate(vb)
            S, D, P = np.concatenate(vstage), np.concatenate(vd), np.concatenate(vp)
            C, N = np.concatenate(vc), np.concatenate(vn)
            # a pair found several times (both ends, centre window) keeps its best evidence,
            # whatever order threads and batches found it in
            key = A * max(n, 1) + B
            order = np.lexsort((np.nan_to_num(-N, nan=1.0), P, D, S, key))
            _, first = np.unique(key[order], return_index=True)
            pick = order[first]
            A, B, S, D, P, C, N = A[pick], B[pick], S[pick], D[pick], P[pick], C[pick], N[pick]
        else:
            A = B = S = D = P = C = N = np.zeros(0, dtype=np.int64)
        n_verified = int(len(A))
        uf = UnionFind(n)
        for x, y in zip(A.tolist(), B.tolist()):
            uf.union(x, y)
        comps = uf.components()
        member_rows = {r for c in comps.values() for r in c}
        edges: dict[int, dict[int, tuple[bool, object]]] = {}
        for k in range(n_verified):
            x, y = int(A[k]), int(B[k])
            ev = _evidence(int(S[k]), int(D[k]), int(P[k]), float(C[k]), float(N[k]))
            strong = int(S[k]) == 1 and int(D[k]) <= params.strong_threshold
            edges.setdefault(x, {})[y] = (strong, ev)
            edges.setdefault(y, {})[x] = (strong, ev)
        scores: dict[int, float] = {}

        def rank(r: int) -> tuple:
            return (-round(scores[r], 6), paths_of_row[r][0])

        def verify_pair(k: int, r: int) -> object | None:
            ver = verify_batch(np.array([k]), np.array([r]), np.array([-1]), cols, params, load_sigs)
            if not len(ver):
                return None
            return _evidence(int(ver.stage[0]), int(ver.d256[0]), -1, float(ver.colour[0]), float(ver.ncc[0]))

        groups: list[Group] = []
        soft = QUALITY_FIELDS.index("softness")
        for comp in comps.values():
            # softness is judged against the component's own median: a naturally soft photo
            # is not penalised, a copy smoother than its siblings (upscaled, blurred) is
            q = cols["quality"][comp]
            s = quality_score(**{f: q[:, i] for i, f in enumerate(QUALITY_FIELDS)},
                              reference_softness=float(np.median(q[:, soft])))
            scores.update(zip(comp, s.tolist()))
            for keeper, rows_in, attach in guarded_groups(comp, edges, rank, verify_pair):
                groups.append(_make_group(keeper, rows_in, attach, paths_of_row, cols["quality"]))
        for r in range(n):
            if r not in member_rows and len(paths_of_row[r]) > 1:
                groups.append(_make_group(r, [r], {}, paths_of_row, cols["quality"]))
        groups.sort(key=lambda g: (-len(g.members), g.keep))
    failures.sort(key=lambda f: f.path)
    stats = {
        "images": n_listed + sum(1 for f in failures if f.stage == "scan"),
        "decoded": n_decoded,
        "from_cache": n_cached,
        "failed": len(failures),
        "unique_contents": n,
        "candidate_pairs": n_cand,
        "verified_pairs": n_verified,
        "groups": len(groups),
        "duplicates": sum(len(g.members) - 1 for g in groups),
        "settings": {"radius": opts.radius, "hash_threshold": opts.hash_threshold, "crop_ncc": opts.crop_ncc},
        "stages": clock.stages,
    }
    return ScanResult(groups, failures, stats)


def _evidence(stage: int, d256: int, p64: int, colour: float, ncc: float) -> dict[str, object]:
    ev: dict[str, object] = {"stage": STAGE_NAMES[stage], "hash256": d256, "colour": round(colour, 2)}
    if p64 >= 0:
        ev["hash64"] = p64
    if not np.isnan(ncc):
        ev["crop_ncc"] = round(ncc, 4)
    return ev


def _reason(keep: QualityFacts, others: list[QualityFacts]) -> str:
    if not others:
        return "identical bytes; kept the first path in sort order"
    bits = []
    if all(keep.pixels > o.pixels for o in others):
        bits.append("most pixels")
    if keep.lossless and not all(o.lossless for o in others):
        bits.append("lossless")
    elif keep.jpeg_quality and all(keep.jpeg_quality > o.jpeg_quality for o in others if o.jpeg_quality):
        bits.append(f"highest JPEG quality (~{keep.jpeg_quality})")
    if keep.softness < 1.5 and any(o.softness >= keep.softness + 0.15 for o in others):
        bits.append("more real detail (others upscaled or blurred)")
    if keep.colourfulness > 12 and any(o.colourfulness <= 12 for o in others):
        bits.append("in colour")
    if keep.border < 0.01 and any(o.border >= 0.01 for o in others):
        bits.append("no added border")
    return "best quality score: " + (", ".join(bits) if bits else "best balance of size, detail and quality")


def _make_group(keeper: int, rows: list[int], attach: dict[int, tuple[int, object]],
                paths_of_row: list[list[str]], quality: np.ndarray) -> Group:
    keep = paths_of_row[keeper][0]
    members: list[str] = []
    pairs: list[Pair] = []
    for r in rows:
        ps = paths_of_row[r]
        members.extend(ps)
        for extra in ps[1:]:
            pairs.append(Pair(ps[0], extra, "exact", distance=0))
        if r in attach:
            via, ev = attach[r]
            e = dict(ev)  # type: ignore[call-overload]
            stage = str(e["stage"])
            pairs.append(Pair(paths_of_row[via][0], ps[0], stage,
                              distance=int(e["hash256"]) if stage == "hash" else None,
                              score=float(e["crop_ncc"]) if stage == "crop" else None, evidence=e))
    others = [QualityFacts.from_row(quality[r]) for r in rows if r != keeper]
    if len(rows) == 1:
        reason = "identical bytes; kept the first path in sort order"
    else:
        reason = _reason(QualityFacts.from_row(quality[keeper]), others)
    members = [keep] + sorted(m for m in members if m != keep)
    return Group(keep, members, reason, pairs)


