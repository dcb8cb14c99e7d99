"""Stages 1-2, list and extract, streamed: each listing batch is looked up in the store, the
misses go to the workers, and their chunks are written back a few at a time, one transaction
for each 128 images or each second of work."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Progress, ScanOptions
from ..errors import SourceError
from ..features.extract import FeatureBatch
from ..results import Failure
from ..sources import FileEntry, is_remote, scrub
from ..store import EmbeddingRow, FeatureCache, FileRow, RunRow
from .extract import Chunk, Limits, batched, extract_many
from .listing import ListingTally, list_entries, skip_dirs_for

if TYPE_CHECKING:
    from ..embed.model import ModelSpec

__all__ = ["Ingested", "ingest", "UNREACHABLE_STREAK"]

#: this many reads in a row failing as "unreachable" means the source is down: stop cleanly
UNREACHABLE_STREAK = 16


@dataclass
class Ingested:
    """What listing and extraction left besides the store's run table: counts and failures."""

    failures: list[Failure] = field(default_factory=list)
    tally: ListingTally = field(default_factory=ListingTally)
    listed: int = 0
    cached: int = 0
    decoded: int = 0
    read: int = 0
    restarts: int = 0

    @property
    def images(self) -> int:
        """Files listed as images, counting those the listing itself failed on."""
        return self.listed + sum(1 for f in self.failures if f.stage == "scan")


def ingest(paths: list[str], fc: FeatureCache, opts: ScanOptions, spec: ModelSpec | None, progress: Progress,
           listed_total: Callable[[], int | None]) -> Ingested:
    """List ``paths``, extract what the store does not hold, and fill this run's table."""
    got = Ingested()
    model_id = spec.model_id if spec is not None else None
    fc.start_run()
    pool_stats: dict[str, int] = {}
    misses = _misses(paths, fc, opts, model_id, got, progress, listed_total)
    if opts.executor == "dask":
        from ..executors.dask import DASK_BATCH, dask_extract_many  # noqa: PLC0415 - Dask is an optional extra

        outcomes = dask_extract_many(misses, scheduler=opts.scheduler, workers=opts.worker_count,
                                     max_pixels=opts.max_pixels, model=spec, retries=opts.retries,
                                     chunk=max(1, min(DASK_BATCH, opts.batch)), time_budget=opts.time_budget)
    else:
        outcomes = extract_many(misses, workers=opts.worker_count, max_pixels=opts.max_pixels, cache_file=fc.path,
                                model=spec, retries=opts.retries, chunk=max(1, min(32, opts.batch)),
                                limits=Limits(time_budget=opts.time_budget, memory_mb=opts.worker_memory),
                                stats=pool_stats, remote=any(is_remote(p) for p in paths))
    writes = _Writes(fc, spec)
    with closing(outcomes):  # an error below still shuts the workers down
        try:
            _take(outcomes, writes, got, progress, listed_total)
        except BaseException:
            with suppress(Exception):  # finished work is kept where it can be (the error is the one to report)
                writes.flush()
            raise
        writes.flush()
    got.restarts = pool_stats.get("pool_restarts", 0)
    return got


def _take(outcomes: Iterator[Chunk], writes: _Writes, got: Ingested, progress: Progress,
          listed_total: Callable[[], int | None]) -> None:
    """Hand every finished chunk to the store's writes and count it; stop when the source looks down."""
    streak = 0
    for chunk in outcomes:
        writes.add(chunk)
        got.read += sum(o.error_stage != "read" for o in chunk.outcomes)
        for o in chunk.outcomes:
            streak = streak + 1 if o.error_reason == "unreachable" else 0
            if streak >= UNREACHABLE_STREAK:
                raise SourceError(f"{streak} reads in a row failed, the last with: {scrub(o.error or '')} "
                                  f"({scrub(o.path)}); the source looks unreachable. Finished work is "
                                  "cached: run the same scan again to resume")
            if o.digest is None:
                got.failures.append(Failure(o.path, o.error_stage or "decode", o.error or "", o.error_reason or ""))
            else:
                got.decoded += o.fresh
                got.cached += not o.fresh
        progress("extract", len(chunk.outcomes), listed_total())


def _misses(paths: list[str], fc: FeatureCache, opts: ScanOptions, model_id: str | None, got: Ingested,
            progress: Progress, listed_total: Callable[[], int | None]) -> Iterator[FileEntry]:
    """The listed files the store knows nothing current about; the known ones join the run
    (or its failures) as the pool pulls the misses."""
    for batch in batched(list_entries(paths, got.failures, got.tally, skip_dirs=skip_dirs_for(fc.path)), opts.batch):
        got.listed += len(batch)
        # the known files join the run inside the store; only the rest come back here
        known = fc.add_known_to_run([(e.path, e.size, e.mtime_ns, e.etag) for e in batch], model=model_id)
        got.cached += known.joined + len(known.failures)
        for _, rec in known.failures:
            got.failures.append(Failure(rec.path, rec.error_stage or "decode", rec.error or "", rec.error_reason or ""))
        progress("extract", known.joined + len(known.failures), listed_total())
        for i in known.unknown:
            yield batch[i]


#: finished chunks are written to the store together, this many images or this many seconds of
#: work at a time (whichever comes first): a transaction's cost is mostly its commit, which writes
#: every page it touched, so four chunks of 32 cost about half as much an image as one
#: (benchmarks/cache_writes.py --batch); a killed run loses at most this much work
WRITE_IMAGES = 128
WRITE_SECONDS = 1.0


class _Writes:
    """Chunks' file records, features, embeddings (and contained views and regions, for a
    regional model) and run rows, written a transaction per :data:`WRITE_IMAGES` images or
    :data:`WRITE_SECONDS` seconds."""

    def __init__(self, fc: FeatureCache, spec: ModelSpec | None) -> None:
        self.fc, self.spec = fc, spec
        self.files: list[FileRow] = []
        self.features: list[FeatureBatch] = []
        self.embeddings: list[EmbeddingRow] = []
        self.run: list[RunRow] = []
        self.images = 0
        self.since = 0.0  # when the oldest chunk not yet written arrived

    def add(self, chunk: Chunk) -> None:
        outs, emb, spec = chunk.outcomes, chunk.embeddings, self.spec
        if not self.images:
            self.since = time.monotonic()
        if emb is not None and spec is not None and len(emb):
            digests = [d.tobytes() for d in chunk.features.digest]
            self.embeddings += [EmbeddingRow(d, spec.model_id, emb[k].astype("<f2").tobytes()) for k, d in enumerate(digests)]
            if chunk.contained is not None and chunk.regions is not None:
                self.embeddings += [EmbeddingRow(d, spec.contained_id, chunk.contained[k].astype("<f2").tobytes())
                                    for k, d in enumerate(digests)]
                self.embeddings += [EmbeddingRow(d, spec.regions_id, chunk.regions[k].tobytes())
                                    for k, d in enumerate(digests)]
        self.files += [FileRow(o.path, o.size, o.mtime_ns, o.digest, o.error_stage, o.error_reason, o.error, o.etag)
                       for o in outs if o.cacheable]
        if len(chunk.features):
            self.features.append(chunk.features)
        self.run += [RunRow(o.path, o.digest, o.size, o.mtime_ns) for o in outs if o.digest is not None]
        self.images += len(outs)
        if self.images >= WRITE_IMAGES or time.monotonic() - self.since >= WRITE_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write what is held, in one transaction."""
        if not self.images:
            return
        features = self.features[0] if len(self.features) == 1 else FeatureBatch.concat(self.features)
        self.fc.put_batch(self.files, features, self.embeddings, run=self.run)
        self.files, self.features, self.embeddings, self.run, self.images = [], [], [], [], 0
