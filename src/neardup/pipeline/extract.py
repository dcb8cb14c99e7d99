"""Extraction of many files in parallel worker processes with bounded queues."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..errors import DecodeError
from ..features.decode import decode
from ..features.extract import FEATURE_VERSION, ImageFeatures, canonical_rgb, digest_bytes, features_from_decoded

if TYPE_CHECKING:
    from ..embed.model import Embedder, ModelSpec

__all__ = ["Outcome", "batched", "extract_many", "extract_one"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result for one file: a digest, maybe new features, or a failure."""

    path: str
    size: int
    mtime_ns: int
    digest: bytes | None
    features: ImageFeatures | None  # None when the digest's features were already cached
    error_stage: str | None = None
    error_reason: str | None = None
    error: str | None = None
    embedding: np.ndarray | None = None  # float16, thorough mode, when newly computed


_known: sqlite3.Connection | None = None
_embedder: Embedder | None = None


def _init_worker(cache_file: str | None, spec: ModelSpec | None = None) -> None:
    global _known, _embedder
    if _known is not None:
        _known.close()
        _known = None
    if cache_file and cache_file != ":memory:" and os.path.exists(cache_file):
        _known = sqlite3.connect(f"file:{cache_file}?mode=ro", uri=True, check_same_thread=False)
    _embedder = None
    if spec is not None:
        from ..embed.model import Embedder

        _embedder = Embedder(spec, threads=1)


def _cached(digest: bytes) -> bool:
    if _known is None:
        return False
    try:
        row = _known.execute(
            "SELECT 1 FROM features WHERE digest=? AND version=?", (digest, FEATURE_VERSION)
        ).fetchone()
        if row is not None and _embedder is not None:
            row = _known.execute(
                "SELECT 1 FROM embeddings WHERE digest=? AND model=?", (digest, _embedder.spec.model_id)
            ).fetchone()
    except sqlite3.Error:
        return False
    return row is not None


def extract_one(path: str, size: int, mtime_ns: int, max_pixels: int) -> Outcome:
    return _extract_one(path, size, mtime_ns, max_pixels)[0]


def _extract_one(path: str, size: int, mtime_ns: int, max_pixels: int) -> tuple[Outcome, np.ndarray | None]:
    """Read, digest and (unless the digest is cached) decode one file; never raises."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        reason = "vanished" if isinstance(e, FileNotFoundError) else "unreadable"
        return Outcome(path, size, mtime_ns, None, None, "read", reason, f"cannot read: {e.strerror}"), None
    digest = digest_bytes(data)
    if _cached(digest):
        return Outcome(path, size, mtime_ns, digest, None), None
    try:
        dec = decode(data, max_pixels=max_pixels)
        feats = features_from_decoded(dec, digest)
        view = canonical_rgb(dec, 0) if _embedder is not None else None
    except DecodeError as e:
        return Outcome(path, size, mtime_ns, None, None, "decode", e.reason, str(e)), None
    except MemoryError:
        return Outcome(path, size, mtime_ns, None, None, "decode", "out-of-memory", "ran out of memory"), None
    except Exception as e:  # a decoder bug must cost one file, not the run
        return Outcome(path, size, mtime_ns, None, None, "decode", "internal-error", f"{type(e).__name__}: {e}"), None
    return Outcome(path, size, mtime_ns, digest, feats), view


def _extract_chunk(items: list[tuple[str, int, int]], max_pixels: int) -> list[Outcome]:
    done = [_extract_one(p, s, m, max_pixels) for p, s, m in items]
    if _embedder is None:
        return [o for o, _ in done]
    # one batched inference per chunk; the working images are dropped right after
    todo = [i for i, (_, v) in enumerate(done) if v is not None]
    # small inference batches: the runtime's peak memory grows with the batch, the speed hardly
    views = [v for _, v in done if v is not None]
    vecs = [e for s in range(0, len(views), 8) for e in _embedder.embed(views[s : s + 8])]
    out = [o for o, _ in done]
    for k, i in enumerate(todo):
        out[i] = replace(out[i], embedding=vecs[k])
    return out


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
    items: Iterable[tuple[str, int, int]],
    *,
    workers: int,
    max_pixels: int,
    cache_file: str | None,
    model: ModelSpec | None = None,
    chunk: int = 32,
) -> Iterator[list[Outcome]]:
    """Yield outcomes chunk by chunk, as they finish, from one pool that lives for the run.

    At most ``2 * workers`` chunks are in flight, so memory is bounded whatever the input
    size; finished chunks are handed back as soon as they are seen, so a killed run loses
    only what was in flight.  ``items`` is consumed lazily.
    """
    if workers <= 1:
        _init_worker(cache_file, model)
        for c in batched(items, chunk):
            yield _extract_chunk(c, max_pixels)
        return
    # workers start on demand: a run whose files are all cached starts none
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(cache_file, model)) as pool:
        pending: set[Future[list[Outcome]]] = set()
        for c in batched(items, chunk):
            pending.add(pool.submit(_extract_chunk, c, max_pixels))
            block = len(pending) >= 2 * workers
            done, pending = wait(pending, return_when=FIRST_COMPLETED, timeout=None if block else 0)
            for fut in done:
                yield fut.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
