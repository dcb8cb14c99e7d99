"""Exact Hamming-radius search over 64-bit codes by multi-index hashing.

Pigeonhole: split the 64 bits into ``m`` chunks; two codes within distance ``r`` agree to
within ``r // m`` bits on at least one chunk.  A chunk takes every ``m``-th bit (bit ``i`` goes to
chunk ``i % m``), not a run of neighbours: a code's bits follow its DCT coefficients in order, so
a run of them is one band of frequencies, which pictures of one kind share (smooth pictures have
a near-constant high band) and which then crowds a few buckets; interleaved, every chunk mixes
all bands (docs/benchmarks.md, "Faster search, crop test and store writes").  Each chunk has a direct-address table (a CSR
offset array over the sorted chunk values), every query probes its chunk value with up to
``r // m`` bits flipped, and each hit is confirmed by a full popcount.  Nothing is skipped and
nothing is capped: the result is exactly the brute-force set of pairs, streamed in bounded
batches so that a hub of look-alike codes costs time, never memory.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..features.loops import Engine as LoopEngine
from ..features.loops import use_compiled

try:  # the query's inner loop and the tables' build, compiled at install where a C compiler was found (mih_loop.c)
    from .mih_loop import build as _compiled_build
    from .mih_loop import search as _compiled_search
except ImportError:  # pragma: no cover - depends on the install
    _compiled_search = None  # type: ignore[assignment]
    _compiled_build = None  # type: ignore[assignment]

__all__ = ["PairBatch", "MultiIndex", "choose_chunks", "brute_force_pairs", "MIH_FORMAT", "COMPILED", "Engine"]

#: whether the compiled query loop is installed (else every query runs the NumPy loop, about 2x slower)
COMPILED = _compiled_search is not None

#: which loop a query runs, or builds the tables: "auto" (the compiled one where installed), "numpy"
#: or "compiled" (the package's one engine type, features/loops.py)
Engine = LoopEngine

#: the layout :meth:`MultiIndex.save` writes
MIH_FORMAT = "neardup-mih/3"


@dataclass(frozen=True, slots=True)
class PairBatch:
    """Columns of candidate pairs: row ids ``a < b`` and their Hamming distance."""

    a: np.ndarray  # int64
    b: np.ndarray  # int64
    distance: np.ndarray  # int16

    def __len__(self) -> int:
        return int(self.a.shape[0])


def _popcount64(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).astype(np.int16)


def _flip_masks(width: int, flips: int) -> np.ndarray:
    masks = [0]
    for k in range(1, flips + 1):
        for bits in itertools.combinations(range(width), k):
            m = 0
            for bit in bits:
                m |= 1 << bit
            masks.append(m)
    return np.asarray(masks, dtype=np.int64)


def _bucket_order(key: np.ndarray, width: int) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for keys of ``width`` <= 32 bits, as one or two stable
    sorts of 16-bit digits: NumPy sorts 16-bit integers by radix, several times faster than
    64-bit ones (docs/benchmarks.md, "Memory at scale")."""
    if width > 32:
        return np.argsort(key, kind="stable")
    low = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    if width <= 16:
        return low
    return low[np.argsort((key[low] >> 16).astype(np.uint16), kind="stable")]


#: what confirming a probe's hit costs against the probe itself: a probe reads the bucket map and
#: offsets at a random place, a hit the next code of a bucket's run.  0.1 makes
#: :func:`choose_chunks` pick the fastest count measured on real codes from 15,000 to 500,000
#: indexed (benchmarks/chunk_count.py; docs/benchmarks.md, "Cheaper features, a compiled build")
CONFIRM_COST = 0.1


def choose_chunks(n: int, radius: int, *, queries: int | None = None) -> int:
    """The number of chunks that minimises the cost of ``queries`` codes (``n`` if None)
    querying an index of ``n``: probes, the hits they confirm (:data:`CONFIRM_COST` each), and
    the tables' construction."""
    best, best_cost = 3, math.inf
    q = n if queries is None else queries
    for m in range(3, 17):
        widths = _widths(m)
        if max(widths) > 26:  # direct-address tables above 2**26 entries cost too much memory
            continue
        f = radius // m
        # per indexed code: the probes of the queries and the hits they confirm, chunk by chunk,
        # plus its share of building the m tables of 2**width buckets (which dominates for a
        # few codes, or few queries, at a small radius: a 100-code index must not build three
        # 2M-bucket tables)
        cost = sum((q / max(n, 1)) * sum(math.comb(w, k) for k in range(f + 1)) * (1.0 + CONFIRM_COST * n / 2.0**w)
                   + 2.0**w / max(n, 1) for w in widths)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def _widths(m: int) -> list[int]:
    """Bits in each of ``m`` interleaved chunks of a 64-bit code: chunk ``c`` holds bits c, c+m, ..."""
    return [len(range(c, 64, m)) for c in range(m)]


@functools.lru_cache(maxsize=16)
def _interleave_table(m: int) -> np.ndarray:
    """(m, 8, 256) uint32: what byte ``j`` of a code, of value ``v``, puts in chunk ``c``'s key
    (bit ``i = 8j + k`` goes to chunk ``i % m`` at place ``i // m``): a key is 8 table lookups."""
    table = np.zeros((m, 8, 256), np.uint32)
    value = np.arange(256, dtype=np.uint32)
    for i in range(64):
        j, k = divmod(i, 8)
        table[i % m, j] |= ((value >> np.uint32(k)) & np.uint32(1)) << np.uint32(i // m)
    table.flags.writeable = False  # shared by every caller through the cache
    return table


def _chunk_key(code_bytes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The chunk key of every code, from its (n, 8) little-endian bytes and its chunk's table."""
    key = table[0][code_bytes[:, 0]]
    for j in range(1, 8):
        key |= table[j][code_bytes[:, j]]
    return key


def _code_bytes(codes: np.ndarray) -> np.ndarray:
    """(n, 8) bytes of each code, least significant first, whatever the machine's byte order."""
    return np.ascontiguousarray(codes, dtype="<u8").view(np.uint8).reshape(-1, 8)


#: batches a query thread may have waiting for the consumer (each up to ``max_pairs`` pairs)
HANDOVER_DEPTH = 2


class _Handover:
    """One block of queries' batches, from the thread that finds them to the consumer, at most
    HANDOVER_DEPTH waiting: a block of look-alike queries that finds millions of pairs waits for
    them to be taken instead of holding them all (a block used to be handed over whole)."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=HANDOVER_DEPTH)
        self._stop = threading.Event()
        self._taken_all = False  # the end (or the error) was taken: the thread is done with it

    def fill(self, batches: Iterator[PairBatch]) -> None:
        """Run on a query thread: every batch of ``batches``, then the end (or the error)."""
        try:
            for pb in batches:
                if self._stop.is_set():
                    break
                self._queue.put(pb)
        except Exception as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._queue.put(_Failed(e))
            return
        self._queue.put(self._END)

    def drain(self) -> Iterator[PairBatch]:
        """The block's batches, in the order they were found."""
        while True:
            item = self._queue.get()
            if item is self._END or isinstance(item, _Failed):
                self._taken_all = True
                if isinstance(item, _Failed):
                    raise item.error
                return
            assert isinstance(item, PairBatch)
            yield item

    def cancel(self) -> None:
        """Stop the block and take what it put, until its thread has finished."""
        self._stop.set()
        while not self._taken_all:
            item = self._queue.get()
            self._taken_all = item is self._END or isinstance(item, _Failed)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _use_compiled(engine: Engine, loop: object) -> bool:
    """Whether ``engine`` runs a compiled ``loop`` of mih_loop.c (None where it was not built)."""
    return use_compiled(engine, built=loop is not None, what="compiled multi-index loops (mih_loop)")


class MultiIndex:
    """Index of 64-bit codes with exact radius queries.

    Parameters
    ----------
    codes : (n,) uint64
        The indexed codes.
    ids : (n,) int64
        The row id reported for each code; one row may be indexed under several codes.
    radius : int
        The largest Hamming distance any query will ask for.
    queries : int, optional
        About how many codes will query it (as many as it holds if None): the layout is chosen
        for that many (:func:`choose_chunks`).
    engine : {"auto", "numpy", "compiled"}
        Which builds the tables: a counting sort (mih_loop.c, where it was compiled) or NumPy's
        stable sorts; both make the same tables.
    """

    def __init__(self, codes: np.ndarray, ids: np.ndarray, *, radius: int, n_chunks: int | None = None,
                 queries: int | None = None, engine: Engine = "auto") -> None:
        if radius < 0 or radius > 32:
            raise ValueError(f"radius must be in 0..32, got {radius}")
        compiled = _use_compiled(engine, _compiled_build)
        codes = np.ascontiguousarray(codes, dtype=np.uint64)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        # ids are kept in bucket order per chunk, as int32 where they fit: with codes that
        # is 12 bytes an entry a chunk, the whole index
        id_t = np.int32 if len(ids) == 0 or int(ids.max()) < 2**31 - 1 else np.int64
        self.size = len(codes)
        self.radius = radius
        m = n_chunks or choose_chunks(len(codes), radius, queries=queries)
        # per chunk: (its index, its width, ids, offsets, non-empty map, codes, probe masks): the
        # CSR offsets (int32 keeps the table cache-friendly), a byte map of non-empty buckets so
        # that most probes stop at one small gather, and the codes in bucket order so that
        # confirming a hit reads memory in sequence
        self.chunks: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        off_t = np.int32 if len(codes) < 2**31 - 1 else np.int64
        code_bytes = _code_bytes(codes) if not compiled else None
        table = _interleave_table(m)
        for chunk, w in enumerate(_widths(m)):
            masks = _flip_masks(w, radius // m).astype(np.int32 if w < 31 else np.int64)
            if compiled:  # a counting sort in one pass (mih_loop.c): the same tables
                assert _compiled_build is not None
                offsets = np.empty((1 << w) + 1, dtype=off_t)
                nonempty = np.empty(1 << w, dtype=bool)
                sorted_ids, sorted_codes = np.empty(len(codes), id_t), np.empty(len(codes), np.uint64)
                _compiled_build(codes, table[chunk], ids, offsets, offsets.itemsize, nonempty, sorted_ids,
                                sorted_ids.itemsize, sorted_codes)
                self.chunks.append((chunk, w, sorted_ids, offsets, nonempty, sorted_codes, masks))
                continue
            assert code_bytes is not None
            key = _chunk_key(code_bytes, table[chunk]).astype(np.int64)
            order = _bucket_order(key, w)
            counts = np.bincount(key, minlength=1 << w)
            offsets = np.zeros((1 << w) + 1, dtype=off_t)
            np.cumsum(counts, out=offsets[1:])
            self.chunks.append((chunk, w, ids[order].astype(id_t), offsets, counts > 0, codes[order], masks))
            del key, order, counts

    def relabel(self, new_ids: np.ndarray) -> MultiIndex:
        """This index with every id ``i`` reported as ``new_ids[i]`` (the tables are shared)."""
        out = MultiIndex.__new__(MultiIndex)
        out.size, out.radius = self.size, self.radius
        new_ids = np.asarray(new_ids)
        id_t = np.int32 if not len(new_ids) or int(new_ids.max()) < 2**31 - 1 else np.int64
        out.chunks = [(chunk, w, new_ids[ids].astype(id_t), offsets, nonempty, codes, masks)
                      for chunk, w, ids, offsets, nonempty, codes, masks in self.chunks]
        return out

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the index's tables to ``folder`` as ``.npy`` files that :meth:`load` maps back
        without reading them: a saved collection opens at once, whatever its size."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"format": MIH_FORMAT, "radius": self.radius, "size": self.size,
                "chunks": [[chunk, w] for chunk, w, *_ in self.chunks]}
        for k, (_, _, ids, offsets, nonempty, codes, _) in enumerate(self.chunks):
            np.save(out / f"ids{k}.npy", ids)
            np.save(out / f"offsets{k}.npy", offsets)
            np.save(out / f"nonempty{k}.npy", nonempty)
            np.save(out / f"codes{k}.npy", codes)
        (out / "mih.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MultiIndex:
        """An index :meth:`save` wrote, its tables memory-mapped (pages are read as probes touch them)."""
        src = Path(folder)
        meta = json.loads((src / "mih.json").read_text())
        if meta.get("format") != MIH_FORMAT:
            raise ValueError(f"{src} holds no multi-index of format {MIH_FORMAT}")
        self = cls.__new__(cls)
        self.size, self.radius = int(meta["size"]), int(meta["radius"])
        m = len(meta["chunks"])
        self.chunks = []
        def mapped(name: str) -> np.ndarray:
            # a plain ndarray over the mapping: np.memmap's own indexing costs a Python call per gather
            return np.asarray(np.load(src / name, mmap_mode="r"))

        for k, (chunk, w) in enumerate(meta["chunks"]):
            offsets = mapped(f"offsets{k}.npy")
            masks = _flip_masks(w, self.radius // m).astype(np.int32 if w < 31 else np.int64)
            self.chunks.append((int(chunk), int(w), mapped(f"ids{k}.npy"), offsets, mapped(f"nonempty{k}.npy"),
                                mapped(f"codes{k}.npy"), masks))
        return self

    def query(
        self, qcodes: np.ndarray, qids: np.ndarray, *, max_pairs: int = 262_144, threads: int = 1,
        by_query: bool = False, engine: Engine = "auto",
    ) -> Iterator[PairBatch]:
        """Yield every (query, indexed) pair within the radius, normalised to ``a < b``.

        With ``by_query``, ``a`` is the query's id and ``b`` the indexed one, as they are: query
        and index ids then name different things (a query against a saved collection), and no
        pair is dropped as a row with itself.
        Pairs of a row with itself are dropped; a pair may come more than once (from both
        ends, or from several indexed variants), which consumers treat as idempotent.
        Each batch holds at most about ``max_pairs`` probe hits before confirmation (the NumPy
        loop) or ``max_pairs`` confirmed pairs (the compiled one).
        ``engine``: both loops find exactly the same pairs; "auto" runs the compiled one
        (:data:`COMPILED`) unless an array is of a foreign byte order.
        With ``threads > 1`` blocks of queries run on a thread pool (NumPy releases the GIL
        in the gathers that dominate), at most ``2 * threads`` blocks in flight, each handing
        its batches over as it finds them (at most HANDOVER_DEPTH waiting), and batches come
        back in query order, so the output does not depend on the thread count.
        """
        qcodes = np.ascontiguousarray(qcodes, dtype=np.uint64)
        qids = np.ascontiguousarray(qids, dtype=np.int64)
        n = len(qcodes)
        step = max(1, min(n, 4096))
        blocks = [(s, min(n, s + step)) for s in range(0, n, step)]
        query_block = self._query_compiled if self._compiled(engine) else self._query_block

        if threads <= 1:
            for s, e in blocks:
                yield from query_block(qcodes[s:e], qids[s:e], max_pairs, by_query)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            window: deque[_Handover] = deque()
            try:
                for s, e in blocks:
                    handover = _Handover()
                    pool.submit(handover.fill, query_block(qcodes[s:e], qids[s:e], max_pairs, by_query))
                    window.append(handover)
                    if len(window) >= 2 * threads:
                        yield from window[0].drain()
                        window.popleft()  # (only once drained: cancel() below must see a block left half-taken)
                while window:
                    yield from window[0].drain()
                    window.popleft()
            finally:  # the consumer stopped early: no query thread may stay blocked on a full hand-over
                for handover in window:
                    handover.cancel()

    def _compiled(self, engine: Engine) -> bool:
        """Whether a query runs the compiled loop, which reads the tables as native integers."""
        if not _use_compiled(engine, _compiled_search):
            return False
        native = all(a.dtype.isnative and a.flags.c_contiguous
                     for _, _, ids, offsets, _, codes, _ in self.chunks for a in (ids, offsets, codes))
        if engine == "compiled" and not native:
            raise ValueError("this index's tables are of a foreign byte order: use engine='numpy'")
        return native

    def _query_compiled(self, qc: np.ndarray, qi: np.ndarray, max_pairs: int, by_query: bool) -> Iterator[PairBatch]:
        """:meth:`_query_block` by the compiled loop (mih_loop.c): the same pairs, ``max_pairs``
        at most a batch."""
        if _compiled_search is None:  # _compiled() chose this loop only where it is installed
            raise RuntimeError("the compiled multi-index query is not installed")
        table = _interleave_table(len(self.chunks))
        q_bytes = _code_bytes(qc)
        keys = np.empty((len(self.chunks), len(qc)), np.int64)
        tables = []
        for k, (chunk, _, ids, offsets, _, codes, masks) in enumerate(self.chunks):
            keys[k] = _chunk_key(q_bytes, table[chunk])
            tables.append((offsets, offsets.itemsize, codes, ids, ids.itemsize, masks.astype(np.int64)))
        cap = max(1, max_pairs)
        out_q, out_id, out_d = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int16)
        state = np.zeros(4, np.int64)  # where the loop resumes once a full batch is handed on
        while state[0] < len(qc):
            n = _compiled_search(qc, keys, tuple(tables), self.radius, out_q, out_id, out_d, state)
            if n:
                yield from _as_pairs(qi[out_q[:n]], out_id[:n].copy(), out_d[:n].copy(), by_query)

    def _query_block(self, qc: np.ndarray, qi: np.ndarray, max_pairs: int, by_query: bool) -> Iterator[PairBatch]:
        table = _interleave_table(len(self.chunks))
        q_bytes = _code_bytes(qc)
        for chunk, _, sorted_ids, offsets, nonempty, sorted_codes, masks in self.chunks:
            qkey = _chunk_key(q_bytes, table[chunk]).astype(masks.dtype)
            # probe masks in slices so that a hub bucket never materialises all at once
            mstep = max(1, min(len(masks), 1 << 14))
            for m0 in range(0, len(masks), mstep):
                n_masks = min(mstep, len(masks) - m0)
                keys = (qkey[:, None] ^ masks[None, m0 : m0 + n_masks]).ravel()
                probe = np.flatnonzero(nonempty[keys])  # most probes of a sparse table end here
                if probe.size == 0:
                    continue
                k = keys[probe]
                qrow = probe // n_masks
                lo = offsets[k].astype(np.int64)
                cnt = offsets[k + 1] - lo
                # split so that one batch expands to at most ~max_pairs hits
                csum = np.cumsum(cnt)
                cuts = np.searchsorted(csum, np.arange(max_pairs, int(csum[-1]), max_pairs), side="right")
                for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(cnt)]):
                    if s >= e:
                        continue
                    yield from self._expand(qc, qi, lo[s:e], cnt[s:e], qrow[s:e], sorted_ids, sorted_codes, by_query)

    def _expand(self, qc: np.ndarray, qi: np.ndarray, lo: np.ndarray, cnt: np.ndarray, qrow: np.ndarray,
                sorted_ids: np.ndarray, sorted_codes: np.ndarray, by_query: bool) -> Iterator[PairBatch]:
        # a bucket of one code (most, in a table about as large as its codes) is confirmed in
        # place; only the larger buckets are spread into one position per code
        many = np.flatnonzero(cnt > 1)
        if len(many):
            extra = cnt[many] - 1
            rep = np.repeat(np.arange(len(many)), extra)
            first = np.cumsum(extra) - extra
            pos = np.concatenate([lo, lo[many][rep] + 1 + (np.arange(len(rep)) - first[rep])])
            rep_q = np.concatenate([qrow, qrow[many][rep]])
        else:
            pos, rep_q = lo, qrow
        dist = _popcount64(qc[rep_q] ^ sorted_codes[pos])
        keep = np.flatnonzero(dist <= self.radius)
        if not keep.size:
            return
        yield from _as_pairs(qi[rep_q[keep]], sorted_ids[pos[keep]].astype(np.int64), dist[keep], by_query)


def _as_pairs(a: np.ndarray, b: np.ndarray, d: np.ndarray, by_query: bool) -> Iterator[PairBatch]:
    """Query ids ``a``, indexed ids ``b`` and distances as :meth:`MultiIndex.query` yields them:
    as they are ``by_query``, else without a row paired with itself and as ``a < b``."""
    if by_query:
        yield PairBatch(a, b, d)
        return
    ne = a != b
    a, b, d = a[ne], b[ne], d[ne]
    if a.size:
        yield PairBatch(np.minimum(a, b), np.maximum(a, b), d)


def brute_force_pairs(codes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    """All pairs i < j with popcount(codes[i] ^ codes[j]) <= radius, by brute force (tests)."""
    codes = np.asarray(codes, dtype=np.uint64)
    out: set[tuple[int, int]] = set()
    for i in range(len(codes)):
        d = _popcount64(codes[i] ^ codes[i + 1 :])
        for j in np.flatnonzero(d <= radius):
            out.add((i, i + 1 + int(j)))
    return out
