"""Thorough mode: embedding k-NN candidates, verified by the hash tests, else by local features.

Candidates come from the CNN embeddings (pairs at cosine >= ``knn_threshold``, the exact
cosine re-checked for every one).  A candidate the hash or crop test accepts keeps that
evidence; the rest go to local features with geometric and photometric verification
(:mod:`neardup.verify.local`).  A high cosine alone never makes a copy: another shot of the
same scene has one too.  With ``similar``, such shots are grouped as well (stage "similar").
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..embed.knn import ContainsParams, KnnParams, embedding_pairs, region_pairs
from ..embed.regions import dequantise_regions
from ..errors import CacheError, DecodeError
from ..features.decode import decode
from ..features.extract import canonical_rgb
from ..group.unionfind import UnionFind
from ..records import EXTRA_FIELDS, Stage, no_extra
from ..sources import ReadError, read_bytes
from ..store import LocalRow
from ..verify.inset import inset_placement
from ..verify.local import (
    LOCAL_SIDE,
    LOCAL_VERSION,
    LocalEvidence,
    LocalFeatures,
    LocalParams,
    local_features,
    match_inset,
    match_pair,
)
from ..verify.rules import SeenPairs, Verified, VerifyParams, hash_colour, verify_batch

if TYPE_CHECKING:
    from ..config import Progress, ScanOptions
    from ..embed.model import ModelSpec
    from ..records import SearchColumns
    from ..store import FeatureCache

__all__ = ["Thorough", "SIMILAR_COSINE"]

#: with ``similar``: a pair this close in embedding is the same scene or object even without
#: matching keypoints; below it, a geometric match (>= 15 RANSAC inliers over half the smaller
#: view) is needed as well.  `python3 eval/similar.py /tmp/devset --cache DIR`: UKBench views and
#: Holidays shots sit at 0.62-0.88, different scenes at most 0.56, and 6 of the 105,570 pairs of
#: distinct dev-set photos reach 0.75.
SIMILAR_COSINE = 0.75

#: pairs locally verified at a time (their images' local features are held meanwhile)
LOCAL_BATCH = 256


#: a candidate whose layout fits whole inside its container at least this well (verify/inset.py)
#: gets the placement-aligned check where keypoints fail: true insets, frames and slides of
#: eval/contains.py fit at 0.77 and above, the unrelated pairs the region search brings at a
#: median of 0.6
INSET_FLOOR = 0.75


@dataclass(frozen=True, slots=True)
class Placements:
    """Where the layouts put one view of each pair whole inside the other (verify/inset.py)."""

    outer_is_a: np.ndarray  # (k,) bool: the pair's row a is the container
    score: np.ndarray  # (k,) layout correlation of the placement
    box: np.ndarray  # (k, 4) left, top, right, bottom: shares of the container's frame


class Thorough:
    """The thorough stages of one run; holds only an LRU of local features."""

    def __init__(self, fc: FeatureCache, cols: SearchColumns, spec: ModelSpec, params: VerifyParams,
                 opts: ScanOptions, *, fetch: Callable[[np.ndarray], dict[str, np.ndarray]],
                 flags: dict[str, np.ndarray], load_sigs: Callable[[np.ndarray], np.ndarray],
                 workers: int, max_pixels: int, similar: bool = False, lru: int = 512) -> None:
        self.similar = similar
        self.fc, self.cols, self.spec, self.params = fc, cols, spec, params
        self.fetch, self.flags, self.load_sigs = fetch, flags, load_sigs
        self.knn = KnnParams(threshold=opts.knn_threshold)
        self.contains = ContainsParams()
        self.local = LocalParams()
        self.workers, self.max_pixels = workers, max_pixels
        self.t_local = 0.0
        self.n_candidates = 0
        self.n_local = 0
        self.n_contains = 0  # candidate pairs of the contains stage
        self._lru: OrderedDict[int, LocalFeatures | None] = OrderedDict()
        self._lru_size = lru
        self._pending: list[LocalRow] = []
        self._pool: ThreadPoolExecutor | None = None
        self._uf = UnionFind(0)

    # -- embeddings ----------------------------------------------------------------------
    def cosines(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        rows, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        e = self.fc.fetch_embeddings([self.cols.digest(int(r)) for r in rows], self.spec.model_id).astype(np.float32)
        return (e[inv[: len(a)]] * e[inv[len(a) :]]).sum(axis=1)

    # -- local features ------------------------------------------------------------------
    def _compute(self, paths: list[str]) -> LocalFeatures | None:
        for path in paths:
            try:
                dec = decode(read_bytes(path), max_pixels=self.max_pixels, view_side=LOCAL_SIDE)
            except (ReadError, DecodeError):
                continue  # changed or gone since extraction: try another copy
            return local_features(canonical_rgb(dec, 0), frame=(dec.rgb.shape[1], dec.rgb.shape[0]))
        return None

    def _features_many(self, rows: np.ndarray) -> dict[int, LocalFeatures | None]:
        """Local features of ``rows``: from the LRU, else the cache, else computed (in threads:
        decoding and OpenCV release the GIL) and queued for the cache."""
        out: dict[int, LocalFeatures | None] = {}
        missing = []
        for r in rows.tolist():
            if r in self._lru:
                self._lru.move_to_end(r)
                out[r] = self._lru[r]
            else:
                missing.append(r)
        if missing:
            digests = {r: self.cols.digest(r) for r in missing}
            blobs = self.fc.get_local(list(digests.values()), LOCAL_VERSION)
            todo = [r for r in missing if digests[r] not in blobs]
            for r in missing:
                if digests[r] in blobs:
                    out[r] = LocalFeatures.from_bytes(blobs[digests[r]])
            if todo:
                files = self.fc.run_files([digests[r] for r in todo])
                paths = {d: [f.path for f in fs] for d, fs in files.items()}
                for r, lf in zip(todo, self._threads().map(lambda r: self._compute(paths.get(digests[r], [])), todo)):
                    out[r] = lf
                    if lf is not None:
                        self._pending.append(LocalRow(digests[r], LOCAL_VERSION, lf.to_bytes()))
                if len(self._pending) >= 64:
                    self.flush()
            for r in missing:
                self._lru[r] = out[r]
            while len(self._lru) > self._lru_size:
                self._lru.popitem(last=False)
        return out

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.workers))
        return self._pool

    def flush(self) -> None:
        if self._pending:
            self.fc.put_local(self._pending)
            self._pending = []

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _local_verdicts(self, a: np.ndarray, b: np.ndarray, cos: np.ndarray, *, mirror: bool = True,
                        placed: Placements | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stage per pair (LOCAL a copy by local features, CONTAINS one holding the other whole,
        SIMILAR, 0 none of them) and their (k, len(EXTRA_FIELDS)) evidence.  ``mirror``: try the
        mirror image where the embeddings are close (else never).  ``placed``: where the layouts
        put one view inside the other, for a check aligned by that placement where keypoints
        fail (verify.local.match_inset)."""
        ok = np.zeros(len(a), np.uint8)
        extra = no_extra(len(a))
        extra[:, EXTRA_FIELDS.index("cosine")] = cos
        t0 = time.perf_counter()
        # pairs grouped by their first row (the LRU serves the common end), a few hundred at a
        # time: local features are ~100 kB an image, so only a bounded number are held
        order = np.lexsort((b, a))
        for s in range(0, len(order), LOCAL_BATCH):
            idx = order[s : s + LOCAL_BATCH]
            rows = np.unique(np.concatenate([a[idx], b[idx]]))
            feats = self._features_many(rows)
            got = self.fc.fetch([self.cols.digest(int(r)) for r in rows], ("width", "height"))
            size = {int(r): feats[int(r)].content_size((int(w), int(h)))  # type: ignore[union-attr]
                    for r, w, h in zip(rows, got["width"], got["height"]) if feats[int(r)] is not None}

            def one(i: int, feats: dict[int, LocalFeatures | None] = feats,
                    size: dict[int, tuple[float, float]] = size) -> LocalEvidence | None:
                fa, fb = feats[int(a[i])], feats[int(b[i])]
                if fa is None or fb is None:
                    return None
                # a mirrored copy is tried only for close embeddings: it doubles the cost
                ev = match_pair(fa, fb, self.local, mirror=mirror and bool(cos[i] >= self.knn.threshold))
                if ev.accepted(self.local) or placed is None or not placed.score[i] >= INSET_FLOOR:
                    return ev
                outer_a = bool(placed.outer_is_a[i])
                got = match_inset(fa if outer_a else fb, fb if outer_a else fa, tuple(placed.box[i]), self.local)
                c = got.containment  # from the outer's side: +1 is "a holds b" only when a is the outer
                got = replace(got, containment=replace(c, inside=c.inside if outer_a else -c.inside))
                # a picture placed whole inside another was shrunk to fit; one that was not is a
                # small piece of it (a detail, half a photo), which a copy is not
                if not got.accepted(self.local) or not got.shrunk(size[int(a[i])], size[int(b[i])]) >= self.local.shrunk:
                    return ev
                return got

            for i, ev in zip(idx.tolist(), self._threads().map(one, idx.tolist())):
                if ev is None:
                    continue
                extra[i, EXTRA_FIELDS.index("inliers")] = ev.inliers
                extra[i, EXTRA_FIELDS.index("aligned_ncc")] = ev.ncc
                holder = ev.contains(self.local, size[int(a[i])], size[int(b[i])])
                c = ev.containment
                if c.inside and ev.accepted(self.local):  # the evidence either way: contains or not
                    extra[i, EXTRA_FIELDS.index("footprint")], extra[i, EXTRA_FIELDS.index("seam")] = c.footprint, c.seam
                if holder:
                    ok[i] = Stage.CONTAINS
                    extra[i, EXTRA_FIELDS.index("container")] = holder
                elif ev.accepted(self.local):
                    ok[i] = Stage.LOCAL
                elif self.similar and (cos[i] >= SIMILAR_COSINE or (ev.inliers >= self.local.min_inliers
                                                                  and ev.cover >= self.local.min_cover)):
                    ok[i] = Stage.SIMILAR
        self.n_local += len(a)
        self.t_local += time.perf_counter() - t0
        return ok, extra

    # -- the stage -----------------------------------------------------------------------
    def pairs(self, done: np.ndarray, progress: Progress) -> Iterator[tuple[Verified, np.ndarray]]:
        """Yield accepted pairs with their (k, len(EXTRA_FIELDS)) extra evidence: the k-NN
        candidates', then the ``contains`` stage's."""
        n = len(self.cols.digests)
        tested = SeenPairs()
        # rows already joined (by the hash stages, or by an earlier pair here) need no check:
        # the grouping guard verifies any member it needs against its keeper on demand
        self._uf = UnionFind(n)
        for x, y in zip((done // max(n, 1)).tolist(), (done % max(n, 1)).tolist()):
            self._uf.union(x, y)
        try:
            for a_all, b_all, floor in embedding_pairs(lambda: self.fc.iter_run_embeddings(self.spec.model_id), n,
                                                       self.knn, threads=self.workers):
                # sub-batches bound the embeddings read back for the exact cosine (~2.5 kB a row)
                for s in range(0, len(a_all), 4096):
                    yield from self._batch(a_all[s : s + 4096], b_all[s : s + 4096], floor, done, tested, progress)
            yield from self._contains(progress)
        finally:
            self.close()

    def prepare_local(self, rows: np.ndarray) -> None:
        """Compute and cache the local features of ``rows`` now (an index build: its queries
        then verify against the collection without reading it)."""
        for s in range(0, len(rows), LOCAL_BATCH):
            self._features_many(np.asarray(rows[s : s + LOCAL_BATCH], np.int64))
            self._lru.clear()
        self.flush()

    def verify_pairs(self, a: np.ndarray, b: np.ndarray, floor: float, progress: Progress
                     ) -> list[tuple[Verified, np.ndarray]]:
        """Embedding candidates ``a < b`` verified as the k-NN stage verifies them (exact cosine
        at least ``floor``, the hash tests, else local features), outside a scan (a query)."""
        self._uf = UnionFind(len(self.cols.digests))
        try:
            return list(self._batch(np.asarray(a, np.int64), np.asarray(b, np.int64), floor, np.zeros(0, np.int64),
                                    SeenPairs(), progress))
        finally:
            self.flush()

    def _batch(self, a: np.ndarray, b: np.ndarray, floor: float, done: np.ndarray, tested: SeenPairs,
               progress: Progress) -> Iterator[tuple[Verified, np.ndarray]]:
        n = len(self.cols.digests)
        key = a * n + b
        keep = ~np.isin(key, done) & tested.fresh(key)
        a, b = a[keep], b[keep]
        if not len(a):
            return
        uf = self._uf
        apart = np.fromiter((uf.find(x) != uf.find(y) for x, y in zip(a.tolist(), b.tolist())), bool, len(a))
        a, b = a[apart], b[apart]
        if not len(a):
            return
        cos = self.cosines(a, b)
        keep = cos >= floor
        a, b, cos = a[keep], b[keep], cos[keep]
        if not len(a):
            return
        self.n_candidates += len(a)
        progress("embedding", len(a), None)
        ver = verify_batch(a, b, np.full(len(a), -1), fetch=self.fetch, flags=self.flags,
                           params=self.params, load_sigs=self.load_sigs, crop=False)
        if len(ver):
            got = np.isin(key_of(a, b, n), key_of(ver.a, ver.b, n))
            extra = no_extra(len(ver))
            extra[:, EXTRA_FIELDS.index("cosine")] = _align(cos[got], key_of(a[got], b[got], n), key_of(ver.a, ver.b, n))
            for x, y in zip(ver.a.tolist(), ver.b.tolist()):
                uf.union(x, y)
            yield ver, extra
            a, b, cos = a[~got], b[~got], cos[~got]
        if not len(a):
            return
        stage, extra = self._local_verdicts(a, b, cos)
        ok = stage > 0
        if ok.any():
            a, b = a[ok], b[ok]
            for x, y in zip(a.tolist(), b.tolist()):
                uf.union(x, y)
            yield self._decided(a, b, stage[ok], extra[ok])

    def _stored_bytes(self, model: str) -> int | None:
        """The size of the run's first stored vector (or vectors) by ``model``; None when none is."""
        for blobs in self.fc.iter_run_blobs(model, chunk=256):
            for blob in blobs:
                if blob is not None:
                    return len(blob)
        return None

    def _contains(self, progress: Progress) -> Iterator[tuple[Verified, np.ndarray]]:
        """The ``contains`` stage: for each image, the images whose contained view is nearest one
        of its regions (embed/regions.py), given the local check unless already joined."""
        n = len(self.cols.digests)
        view_bytes, region_bytes = self._stored_bytes(self.spec.contained_id), self._stored_bytes(self.spec.regions_id)
        if view_bytes is None or region_bytes is None:
            return  # a model without a feature map (--model) makes neither
        dim = view_bytes // 2  # float16 components
        per_row = region_bytes // dim  # uint8 components

        def contained() -> Iterator[np.ndarray]:
            for blobs in self.fc.iter_run_blobs(self.spec.contained_id):
                yield _rows_of(blobs, lambda v: np.frombuffer(v, "<f2").astype(np.float32), (dim,))

        def regions() -> Iterator[np.ndarray]:
            for blobs in self.fc.iter_run_blobs(self.spec.regions_id, chunk=512):
                yield _rows_of(blobs, lambda v: dequantise_regions(np.frombuffer(v, np.uint8).reshape(per_row, dim)),
                               (per_row, dim))

        uf = self._uf
        for x, y, cos, rank in region_pairs(contained, regions, n, self.knn, self.contains, threads=self.workers):
            keep = np.fromiter((uf.find(i) != uf.find(j) for i, j in zip(x.tolist(), y.tolist())), bool, len(x))
            x, y, cos, rank = x[keep], y[keep], cos[keep], rank[keep]
            # where y's layout fits whole inside x's: the best few by region are checked, and the
            # next ones down where it fits well (regional cosines of a true picture and of
            # look-alikes are often within a few hundredths)
            score, box = inset_placement(self.load_sigs(x), self.load_sigs(y), self.cols.aspect[x], self.cols.aspect[y])
            keep = (rank < self.contains.top) | (score >= self.contains.inset_ncc)
            x, y, cos, score, box = x[keep], y[keep], cos[keep], score[keep], box[keep]
            a, b = np.minimum(x, y), np.maximum(x, y)
            if not len(a):
                continue
            _, first = np.unique(a * n + b, return_index=True)
            a, b, cos = a[first], b[first], cos[first]
            placed = Placements(x[first] == a, score[first], box[first])
            self.n_contains += len(a)
            progress("contains", len(a), None)
            stage, extra = self._local_verdicts(a, b, np.full(len(a), np.nan, np.float32), mirror=False, placed=placed)
            extra[:, EXTRA_FIELDS.index("region_cosine")] = cos
            ok = stage > 0
            if ok.any():
                for i, j in zip(a[ok].tolist(), b[ok].tolist()):
                    uf.union(i, j)
                yield self._decided(a[ok], b[ok], stage[ok], extra[ok])

    def region_cosine(self, a: int, b: int) -> float:
        """The best cosine of either image's regions with the other's contained view (nan for a
        model without them)."""
        rows = sorted((a, b))
        digests = [self.cols.digest(r) for r in rows]
        try:
            views = self.fc.fetch_embeddings(digests, self.spec.contained_id).astype(np.float32)
            regions = self.fc.fetch_embeddings(digests, self.spec.regions_id, "u1")
        except CacheError:  # not made by this model
            return float("nan")
        per = regions.reshape(2, -1, views.shape[1])
        return float(max((dequantise_regions(per[0]) @ views[1]).max(), (dequantise_regions(per[1]) @ views[0]).max()))

    def verify_one(self, a: int, b: int) -> tuple[Verified, np.ndarray] | None:
        """Local verification of one pair (the keeper check of the grouping guard): pairs close
        in embedding, or where one may hold the other (a region of one near the other's
        contained view)."""
        A, B = np.array([a]), np.array([b])
        cos = self.cosines(A, B)
        if cos[0] < self.knn.mutual_floor and not self.region_cosine(a, b) >= self.contains.floor:
            return None
        stage, extra = self._local_verdicts(A, B, cos)
        if not stage[0]:
            return None
        ver, extra = self._decided(A, B, stage, extra)
        return ver, extra[0]

    def _decided(self, a: np.ndarray, b: np.ndarray, stage: np.ndarray, extra: np.ndarray) -> tuple[Verified, np.ndarray]:
        """Pairs the local stage accepted, with their hash and colour distances for the evidence."""
        d, cd = hash_colour(a, b, self.fetch)
        ver = Verified(a, b, stage, d, np.full(len(a), -1, np.int16), cd.astype(np.float32),
                       np.full(len(a), np.nan, np.float32))
        return ver, extra.astype(np.float32)


def _rows_of(blobs: list[bytes | None], decode: Callable[[bytes], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """A chunk of stored vectors as one array, zeros where a row has none (it matches nothing)."""
    out = np.zeros((len(blobs), *shape), np.float32)
    for i, blob in enumerate(blobs):
        if blob is not None:
            out[i] = decode(blob).reshape(shape)
    return out


def key_of(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(a, np.int64) * n + np.asarray(b, np.int64)


def _align(values: np.ndarray, keys: np.ndarray, want: np.ndarray) -> np.ndarray:
    """``values`` (by ``keys``) reordered to the order of ``want`` (a subset of keys)."""
    order = np.argsort(keys)
    return values[order[np.searchsorted(keys[order], want)]]
