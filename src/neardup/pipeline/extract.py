"""Extraction of many files in parallel worker processes with bounded queues."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import resource
import signal
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..embed.model import Embedder, Views
from ..errors import DecodeError
from ..features.decode import WORK_SIDE, Decoded, decode
from ..features.extract import FeatureBatch, canonical_rgb, digest_bytes, features_batch
from ..sources import FileEntry, ReadError, configure, is_remote, read_bytes
from ..store import FeatureReader

if TYPE_CHECKING:
    from ..embed.model import Embedder, ModelSpec

__all__ = ["Limits", "Outcome", "Chunk", "Item", "Worker", "batched", "current_worker", "extract_many", "extract_one",
           "run_chunk", "start_worker"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result for one file: a digest (with new features or cached ones), or a failure."""

    path: str
    size: int
    mtime_ns: int
    digest: bytes | None
    fresh: bool  # its features were computed now (they are in the chunk's FeatureBatch)
    error_stage: str | None = None
    error_reason: str | None = None
    error: str | None = None
    etag: str | None = None  # blobs: the ETag listed with the URL

    @property
    def cacheable(self) -> bool:
        """Whether the cache may remember this outcome for the file.  Not a read failure (the
        file may be back, or reachable, next run) nor one caused by this run's limits or a dying
        worker (a rerun may have other limits)."""
        return self.error_stage != "read" and self.error_reason not in RUN_FAILURES


@dataclass(frozen=True, slots=True)
class Chunk:
    """What a worker hands back for a chunk of files: an outcome per file, in order, and the
    features (and embeddings, in thorough mode) of the fresh ones as columns, in the same order."""

    outcomes: list[Outcome]
    features: FeatureBatch
    embeddings: np.ndarray | None = None  # (len(features), d) float16
    contained: np.ndarray | None = None  # (len(features), d) float16: contained views (embed/regions.py)
    regions: np.ndarray | None = None  # (len(features), R, d) uint8: regional vectors

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> Chunk:
        """A chunk of outcomes without new features (failures, cache hits)."""
        return cls(outcomes, FeatureBatch.empty())


#: failure reasons that say more about the run than about the file
RUN_FAILURES = frozenset({"time-budget", "worker-killed", "worker-crashed", "decoder-crashed", "out-of-memory"})

Item = FileEntry
"""What a worker is given for one file: the listing's entry (path, size, mtime, ETag)."""

#: blobs downloaded ahead of the decoder in each worker: hides latency, bounds bytes in flight
PREFETCH = 8

_worker: Worker | None = None
"""This process's worker, made by :func:`start_worker` (a pool's initializer, or the driver
itself with one worker); the only state a process keeps between chunks."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-image limits a worker process enforces on itself.

    ``time_budget`` (seconds, 0 = none): an alarm whose default action kills the process, even
    inside a decoder's C code; the driver then isolates the image and records it.
    ``memory_mb`` (0 = none): the worker's address-space limit; an allocation beyond it is a
    MemoryError (a failure row) or, in C code, a crash the driver survives.
    """

    time_budget: float = 0.0
    memory_mb: int = 0


def _apply_limits(limits: Limits) -> None:
    """Make this process's limits real: the alarm's default action (whatever handler the parent
    had: a fork inherits it) so the kernel ends the process even inside C code, and the
    address-space cap."""
    if limits.time_budget:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if limits.memory_mb:

        # on top of what the worker already maps (a forked child inherits the parent's mappings)
        cap = _vm_size() + limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


#: what a pool initialiser passes to :func:`start_worker`: cache file, model, retries, limits
WorkerInit = tuple["str | None", "ModelSpec | None", int, "Limits | None"]


def start_worker(cache_file: str | None, spec: ModelSpec | None = None, retries: int = 5,
                 limits: Limits | None = None) -> Worker:
    """Set up this process to extract: retries, one BLAS thread, its limits, and a
    :class:`Worker` with the cache's reader and the embedding model; returns it."""
    global _worker  # noqa: PLW0603 - the process's one worker, owned here (see _worker)
    configure(retries=retries)
    _one_blas_thread()
    _keep_freed_memory()
    if limits is not None:
        _apply_limits(limits)
    if _worker is not None:
        _worker.close()
    reader = None
    if cache_file and cache_file != ":memory:" and os.path.exists(cache_file):
        reader = FeatureReader(cache_file)
    embedder = None
    if spec is not None:

        embedder = Embedder(spec, threads=1)
    _worker = Worker(reader, embedder, limits.time_budget if limits is not None else 0.0)
    return _worker


def current_worker() -> Worker | None:
    """This process's worker, if :func:`start_worker` ran in it."""
    return _worker


def run_chunk(items: list[Item], max_pixels: int) -> Chunk:
    """Extract a chunk with this process's worker (what a pool submits: a picklable function)."""
    assert _worker is not None, "start_worker runs first (the pool's initializer)"
    return _worker.extract_chunk(items, max_pixels)


def _keep_freed_memory() -> None:
    """Tell glibc's malloc to reuse freed memory instead of handing it back and mapping it
    anew: every image allocates arrays of the same sizes, and in a virtual machine the page
    faults of fresh mappings cost more than the decode's own work on small images (measured:
    ~13% of a worker's CPU on the dev set).  Bounded: at most 64 MB stays cached."""
    try:

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD: blocks this big come from the heap
        libc.mallopt(-1, 64 * 1024 * 1024)  # M_TRIM_THRESHOLD: keep this much free memory
        libc.mallopt(-2, 16 * 1024 * 1024)  # M_TOP_PAD: grow the heap in big steps
    except (OSError, AttributeError):  # not glibc: the default allocator, a little slower
        pass


def _one_blas_thread() -> None:
    """A worker is one of as many as there are cores: its matrix products run on one thread (a
    BLAS pool per worker would put several threads on every core)."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - only where threadpoolctl is installed
        threadpool_limits(1)
    except Exception:  # noqa: BLE001  # pragma: no cover - an unknown BLAS costs speed, not results
        pass


def extract_one(path: str, size: int, mtime_ns: int, max_pixels: int, etag: str | None = None) -> Chunk:
    """Read, digest and decode one file in this process (a chunk of one)."""
    return (_worker or Worker(None, None)).extract_chunk([FileEntry(path, size, mtime_ns, etag)], max_pixels)


def _read(path: str) -> bytes | ReadError:
    try:
        return read_bytes(path)
    except ReadError as e:
        return e
    except Exception as e:  # noqa: BLE001 - a client library's bug must cost one file, not the run
        return ReadError("unreadable", f"cannot read: {type(e).__name__}")


@lru_cache(maxsize=1)
def _read_pool(pid: int) -> ThreadPoolExecutor:
    """This process's reading threads, keyed by its pid: a forked child has the parent's pool
    object but not its threads, so it makes its own."""
    return ThreadPoolExecutor(PREFETCH, thread_name_prefix="neardup-read")


def _prefetched(items: list[Item]) -> Iterator[bytes | ReadError | None]:
    """The bytes of remote items, read in threads up to :data:`PREFETCH` ahead of the caller,
    in order; ``None`` for local files (read by the caller: a thread would only add cost)."""
    if not any(is_remote(it.path) for it in items):
        yield from (None for _ in items)
        return
    pool = _read_pool(os.getpid())
    ahead: deque[Future[bytes | ReadError] | None] = deque()
    nxt = 0

    def top_up() -> None:
        nonlocal nxt
        while nxt < len(items) and len(ahead) < PREFETCH:
            p = items[nxt].path
            ahead.append(pool.submit(_read, p) if is_remote(p) else None)
            nxt += 1

    top_up()
    while ahead:
        f = ahead.popleft()
        top_up()
        yield None if f is None else f.result()


class Worker:
    """What one process needs to extract files: the cache's reader (contents it need not
    decode), the embedding model (thorough mode) and the per-image time budget (seconds, 0 =
    none), enforced by the kernel's alarm in worker processes only."""

    def __init__(self, reader: FeatureReader | None, embedder: Embedder | None, time_budget: float = 0.0) -> None:
        self.reader = reader
        self.embedder = embedder
        self.time_budget = time_budget

    @property
    def model_id(self) -> str | None:
        return self.embedder.spec.model_id if self.embedder is not None else None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def extract_chunk(self, items: list[Item], max_pixels: int) -> Chunk:
        """Extract a chunk of files; never raises.  The features of the decoded ones are computed
        together (a few matrix products for the lot), and their pixels dropped."""
        outs: list[Outcome] = []
        decs: list[Decoded] = []
        for it, data in zip(items, _prefetched(items)):
            o, d = self._one(it, max_pixels, data)
            outs.append(o)
            if d is not None:
                decs.append(d)
        fresh = [o for o in outs if o.fresh]
        try:
            feats = features_batch(decs, [o.digest for o in fresh])  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - a bug in the batch must cost the images that cause it: one at a time
            return self._one_by_one(outs, decs)
        views = self._embed(decs) if self.embedder is not None else None
        return _chunk(outs, feats, views)

    def _cached(self, digest: bytes) -> bool:
        return self.reader is not None and self.reader.has(digest, self.model_id)

    def _one(self, item: Item, max_pixels: int, data: bytes | ReadError | None = None) -> tuple[Outcome, Decoded | None]:
        """Read (unless ``data`` is given), digest and (unless the digest is cached) decode one
        file; never raises."""
        path, size, mtime_ns, etag = item.path, item.size, item.mtime_ns, item.etag
        if data is None:
            data = _read(path)
        if isinstance(data, ReadError):
            return Outcome(path, size, mtime_ns, None, False, "read", data.reason, str(data), etag=etag), None
        digest = digest_bytes(data)
        if self._cached(digest):
            return Outcome(path, size, mtime_ns, digest, False, etag=etag), None
        budget = self.time_budget
        try:
            if budget:
                signal.setitimer(signal.ITIMER_REAL, budget)  # default action: the kernel ends this process
            dec = decode(data, max_pixels=max_pixels, view_side=WORK_SIDE if self.embedder is not None else 0)
            del data  # the pixels' source is not kept a moment longer than the decode
        except DecodeError as e:
            return Outcome(path, size, mtime_ns, None, False, "decode", e.reason, str(e), etag=etag), None
        except MemoryError:
            return (Outcome(path, size, mtime_ns, None, False, "decode", "out-of-memory", "ran out of memory",
                            etag=etag), None)
        except Exception as e:  # noqa: BLE001 - a decoder bug must cost one file, not the run
            return (Outcome(path, size, mtime_ns, None, False, "decode", "internal-error", f"{type(e).__name__}: {e}",
                            etag=etag), None)
        finally:
            if budget:
                signal.setitimer(signal.ITIMER_REAL, 0)
        return Outcome(path, size, mtime_ns, digest, True, etag=etag), dec

    def _one_by_one(self, outs: list[Outcome], decs: list[Decoded]) -> Chunk:
        it = iter(decs)
        keep: list[Outcome] = []
        parts: list[FeatureBatch] = []
        good: list[Decoded] = []
        for o in outs:
            if not o.fresh:
                keep.append(o)
                continue
            d = next(it)
            try:
                parts.append(features_batch([d], [o.digest]))  # type: ignore[list-item]
            except Exception as e:  # noqa: BLE001 - recorded as this image's failure row
                keep.append(replace(o, digest=None, fresh=False, error_stage="decode", error_reason="internal-error",
                                    error=f"{type(e).__name__}: {e}"))
                continue
            keep.append(o)
            good.append(d)
        views = self._embed(good) if self.embedder is not None else None
        return _chunk(keep, FeatureBatch.concat(parts), views)

    def _embed(self, decs: list[Decoded]) -> Views:
        """Embeddings of the views (and the contained views and regions of a regional model);
        the embedder runs them in small batches (embed.model.EMBED_BATCH), and the views are
        dropped right after."""
        assert self.embedder is not None
        return self.embedder.embed_views([canonical_rgb(d, 0) for d in decs])


def _chunk(outs: list[Outcome], feats: FeatureBatch, views: Views | None) -> Chunk:
    if views is None:
        return Chunk(outs, feats)
    return Chunk(outs, feats, views.global_, views.contained, views.regions)


T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to ``size`` items, lazily (``itertools.batched`` arrives only in 3.12)."""
    buf: list[T] = []
    for it in items:
        buf.append(it)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def extract_many(
    items: Iterable[Item],
    *,
    workers: int,
    max_pixels: int,
    cache_file: str | None,
    model: ModelSpec | None = None,
    chunk: int = 32,
    retries: int = 5,
    limits: Limits | None = None,
    stats: dict[str, int] | None = None,
    remote: bool = False,
) -> Generator[Chunk, None, None]:
    """Yield chunks as they finish, as they finish, from one pool that lives for the run.

    At most ``2 * workers`` chunks are in flight, so memory is bounded whatever the input
    size; finished chunks are handed back as soon as they are seen, so a killed run loses
    only what was in flight.  ``items`` is consumed lazily.

    A worker process that dies (a decoder's segfault, the OOM killer, the time budget) breaks
    the pool: the chunks it held are then run again one image per process, so the image that
    kills its process is found and becomes a failure row, and the run goes on with a new pool.
    ``stats["pool_restarts"]`` counts those recoveries.

    ``remote``: the items are blob URLs.  Their listing runs in threads of this process (the
    cloud SDKs hold locks there) while the pool starts, so its workers are spawned afresh, not
    forked: a forked child can inherit a lock a listing thread held at that instant and wait on
    it forever.  Local folders keep the faster fork.
    """
    limits = limits or Limits()
    if workers <= 1:
        worker = start_worker(cache_file, model, retries)  # in this process: no alarm, no address-space cap
        for c in batched(items, chunk):
            yield worker.extract_chunk(c, max_pixels)
        return
    pool = _Pool(workers, max_pixels, (cache_file, model, retries, limits), start="spawn" if remote else None)
    try:
        for c in _ramped(items, chunk, workers):
            yield from pool.submit(c)
        yield from pool.finish()
    finally:
        pool.close()
        if stats is not None:
            stats["pool_restarts"] = stats.get("pool_restarts", 0) + pool.restarts


def _ramped(items: Iterable[Item], chunk: int, workers: int) -> Iterator[list[Item]]:
    """Chunks that start small (a quarter, then half of ``chunk``, ``workers`` of each) so a
    short run, such as an incremental one with a few new files, still uses every worker."""
    it = iter(items)
    for size in [max(1, chunk // 4)] * workers + [max(1, chunk // 2)] * workers:
        c = list(islice(it, size))
        if not c:
            return
        yield c
    yield from batched(it, chunk)


class _Pool:
    """A process pool that survives its workers: at most ``2 * workers`` chunks in flight; when
    a worker dies, every chunk the pool held runs again one image per process (the culprit
    becomes a failure row) and a fresh pool carries on."""

    def __init__(self, workers: int, max_pixels: int, init: WorkerInit, start: str | None = None) -> None:
        self.workers, self.max_pixels, self.init = workers, max_pixels, init
        self.start = start  # the multiprocessing start method; None: the platform's default
        self.pending: dict[Future[Chunk], list[Item]] = {}
        self.restarts = 0
        self.pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        # workers start on demand: a run whose files are all cached starts none

        ctx = mp.get_context(self.start) if self.start else None
        return ProcessPoolExecutor(max_workers=self.workers, initializer=start_worker, initargs=self.init,
                                   mp_context=ctx)

    def submit(self, c: list[Item]) -> Iterator[Chunk]:
        """Queue a chunk, then hand back what is done (waiting for one when the pool is full)."""
        try:
            self.pending[self.pool.submit(run_chunk, c, self.max_pixels)] = c
        except BrokenProcessPool:  # it broke since the last look
            yield from self._recover(c)
            return
        yield from self._drain(block=len(self.pending) >= 2 * self.workers)

    def finish(self) -> Iterator[Chunk]:
        while self.pending:
            yield from self._drain(block=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _drain(self, *, block: bool) -> Iterator[Chunk]:
        done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED, timeout=None if block else 0)
        lost: list[Item] = []
        for fut in done:
            c = self.pending.pop(fut)
            try:
                out = fut.result()
            except BrokenProcessPool:
                lost.extend(c)
                continue
            yield out
        if lost:
            yield from self._recover(lost)

    def _recover(self, lost: list[Item]) -> Iterator[Chunk]:
        lost = [*lost, *(it for c in self.pending.values() for it in c)]
        self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.restarts += 1
        yield from _isolated(lost, self.max_pixels, self.init)
        self.pool = self._new()


#: how a worker's death reads in a failure row, by the signal that ended it
_DEATHS = {
    signal.SIGALRM: ("time-budget", "took longer than the per-image time budget (--time-budget); the worker was stopped"),
    signal.SIGKILL: ("worker-killed", "its worker was killed (out of memory?); try --worker-memory or more RAM"),
    signal.SIGSEGV: ("decoder-crashed", "the decoder crashed (segmentation fault)"),
    signal.SIGBUS: ("decoder-crashed", "the decoder crashed (bus error)"),
    signal.SIGABRT: ("decoder-crashed", "the decoder aborted"),
    signal.SIGFPE: ("decoder-crashed", "the decoder crashed (arithmetic fault)"),
    signal.SIGILL: ("decoder-crashed", "the decoder crashed (illegal instruction)"),
}


def _isolated(items: list[Item], max_pixels: int, init: WorkerInit) -> Iterator[Chunk]:
    """Each item in a process of its own (forked, limits applied): one that dies is a failure
    row saying how it died; the others give their normal outcome."""

    # forkserver: a clean process to fork from, never this one with its threads and locks
    ctx = mp.get_context("forkserver")
    out: list[Chunk] = []
    for it in items:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_isolated_one, args=(it, max_pixels, init, send), daemon=True)
        proc.start()
        send.close()
        got = None
        try:
            while not recv.poll(1.0):
                if not proc.is_alive():
                    break
            if recv.poll(0):
                got = recv.recv()
        except EOFError:  # it died before answering
            got = None
        finally:
            recv.close()
        proc.join()
        if got is not None:
            out.append(got)
            continue
        code = proc.exitcode or 0
        try:
            sig = signal.Signals(-code) if code < 0 else None
        except ValueError:  # a real-time signal: no name
            sig = None
        if code < 0:
            reason, msg = _DEATHS.get(sig, ("worker-crashed", f"its worker process died of signal {-code}"))  # type: ignore[arg-type]
        else:
            reason, msg = "worker-crashed", f"its worker process exited with status {code}"
        path, size, mtime_ns, etag = it.path, it.size, it.mtime_ns, it.etag
        out.append(Chunk.of([Outcome(path, size, mtime_ns, None, False, "decode", reason, msg, etag=etag)]))
    if out:
        yield _merge(out)


def _merge(chunks: list[Chunk]) -> Chunk:
    outs = [o for c in chunks for o in c.outcomes]
    embs = [c.embeddings for c in chunks if c.embeddings is not None and len(c.embeddings)]
    contained = [c.contained for c in chunks if c.contained is not None and len(c.contained)]
    regions = [c.regions for c in chunks if c.regions is not None and len(c.regions)]
    return Chunk(outs, FeatureBatch.concat([c.features for c in chunks if len(c.features)]),
                 np.concatenate(embs) if embs else None,
                 np.concatenate(contained) if contained and len(contained) == len(embs) else None,
                 np.concatenate(regions) if regions and len(regions) == len(embs) else None)


def _isolated_one(item: Item, max_pixels: int, init: WorkerInit, send: object) -> None:
    res = start_worker(*init).extract_chunk([item], max_pixels)
    send.send(res)  # type: ignore[attr-defined]
    send.close()  # type: ignore[attr-defined]
