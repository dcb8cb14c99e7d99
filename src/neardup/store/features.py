"""Files and features: which path holds which content (or met which failure), the features
and embeddings of each content, and the worker processes' read-only view of them.

A renamed or copied file costs a read and a digest, never a decode; a changed file is seen by
its size or mtime (a blob by its ETag); a new extractor version recomputes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..errors import CacheError
from ..features.extract import FEATURE_VERSION, SIG_SIDE, FeatureBatch
from .blobs import decode_column, feature_rows
from .run import RunRow

__all__ = ["FeatureTables", "FeatureReader", "FileRecord", "FileRow", "EmbeddingRow", "KnownBatch"]


class FileRow(NamedTuple):
    """One file's record as written: its content digest, or the failure it met."""

    path: str
    size: int
    mtime_ns: int
    digest: bytes | None
    error_stage: str | None = None
    error_reason: str | None = None
    error: str | None = None
    etag: str | None = None


class EmbeddingRow(NamedTuple):
    """One content's embedding by one model (float16 little-endian bytes)."""

    digest: bytes
    model: str
    vec: bytes


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What the cache knows about one path: its digest, or the failure it met."""

    path: str
    digest: bytes | None
    error_stage: str | None = None
    error_reason: str | None = None
    error: str | None = None


def _with_embedding(model: str | None) -> tuple[str, str, list[str]]:
    """What makes a cached record current beyond its version, given a ``model``: its embedding
    by that model is stored too.  The condition on the joined row, the join, and its parameters."""
    if model is None:
        return "1", "", []
    return "e.digest IS NOT NULL", "LEFT JOIN embeddings e ON e.digest = f.digest AND e.model = ? ", [model]


@dataclass(slots=True)
class KnownBatch:
    """What :meth:`FeatureTables.add_known_to_run` made of a listing batch."""

    joined: int = 0  # entries added to the run from their cached records
    unknown: list[int] = field(default_factory=list)  # indexes of the entries to extract
    failures: list[tuple[int, FileRecord]] = field(default_factory=list)  # (index, cached failure)


class FeatureReader:
    """A read-only view of a cache file for worker processes: which contents it already holds,
    so a worker skips decoding them.  Any error reading it means "not known" (the driver's own
    lookup decides what is cached; this only saves work)."""

    def __init__(self, cache_file: str) -> None:
        self._db = sqlite3.connect(f"file:{cache_file}?mode=ro", uri=True, check_same_thread=False)

    def has(self, digest: bytes, model_id: str | None = None) -> bool:
        """Whether the features of ``digest`` (and its embedding by ``model_id``, if given) are stored."""
        try:
            row = self._db.execute("SELECT 1 FROM features WHERE digest=? AND version=?",
                                   (digest, FEATURE_VERSION)).fetchone()
            if row is not None and model_id is not None:
                row = self._db.execute("SELECT 1 FROM embeddings WHERE digest=? AND model=?",
                                       (digest, model_id)).fetchone()
        except sqlite3.Error:
            return False
        return row is not None

    def close(self) -> None:
        self._db.close()


class FeatureTables:
    """The ``files``, ``features`` and ``embeddings`` tables (a part of :class:`~neardup.store.FeatureCache`)."""

    db: sqlite3.Connection

    # -- files -------------------------------------------------------------------------
    def lookup_files(self, entries: Sequence[tuple[str, int, int] | tuple[str, int, int, str | None]], *,
                     model: str | None = None) -> dict[str, FileRecord]:
        """Cached records for ``(path, size, mtime_ns[, etag])`` entries that are unchanged.

        A blob is trusted only if its URL, size and ETag (and last-modified time) all match.

        A record counts only if it (its features, or its failure) is of the current version,
        and, given a ``model`` id, its embedding by that model is stored too; a file without
        one is extracted again.
        """
        out: dict[str, FileRecord] = {}
        if not entries:
            return out
        want = {e[0]: (e[1], e[2], e[3] if len(e) > 3 else None) for e in entries}
        lo, hi = min(want), max(want)
        # a listing batch is a narrow range of paths: one range scan of the files table, not a
        # b-tree descent per path (6x cheaper).  A file record of the current version with a digest
        # is written in the same transaction as its features, so they need not be looked up.
        has, join, join_args = _with_embedding(model)
        args = [*join_args, lo, hi, FEATURE_VERSION]
        q = ("SELECT f.path, f.size, f.mtime_ns, f.etag, f.digest, f.error_stage, f.error_reason, f.error, "
             f"{has} FROM files f {join}WHERE f.path BETWEEN ? AND ? AND f.version = ?")
        for path, size, mtime, etag, digest, stage, reason, err, ok in self.db.execute(q, args):
            if want.get(path) != (size, mtime, etag):
                continue
            if digest is not None and ok:
                out[path] = FileRecord(path, bytes(digest))
            elif digest is None and stage is not None:
                out[path] = FileRecord(path, None, stage, reason, err)
        return out

    def add_known_to_run(self, entries: Sequence[tuple[str, int, int, str | None]], *, model: str | None = None
                         ) -> KnownBatch:
        """Add to this run (:meth:`~neardup.store.RunTables.start_run`) every entry
        ``(path, size, mtime_ns, etag)`` whose cached record is unchanged and current (the rule
        of :meth:`lookup_files`), inside SQLite: the batch is staged in a TEMP table and joined
        with ``files``, so a known file costs no Python beyond its staging row.  Returns which
        entries the store knows nothing current about, and the cached failures."""
        out = KnownBatch()
        if not entries:
            return out
        paths = [e[0] for e in entries]
        if self.db.execute("SELECT 1 FROM files WHERE path BETWEEN ? AND ? LIMIT 1",
                           (min(paths), max(paths))).fetchone() is None:
            out.unknown = list(range(len(entries)))  # a cold run's batch: one probe, not a join
            return out
        has, join, join_args = _with_embedding(model)
        args = [FEATURE_VERSION, *join_args]  # the files join's version, then the embeddings join's model
        same = ("LEFT JOIN files f ON f.path = l.path AND f.size = l.size AND f.mtime_ns = l.mtime_ns "
                f"AND f.etag IS l.etag AND f.version = ? {join}")
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS listing (i INTEGER PRIMARY KEY, path TEXT NOT NULL, "
                            "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, etag TEXT)")
            self.db.execute("DELETE FROM temp.listing")
            # into an empty table: row i gets rowid i + 1
            self.db.executemany("INSERT INTO temp.listing (path, size, mtime_ns, etag) VALUES (?, ?, ?, ?)", entries)
            # the joins run as nested loops over the staged rows, one files lookup each
            self.db.execute(f"INSERT INTO temp.run SELECT l.path, f.digest, l.size, l.mtime_ns FROM temp.listing l {same}"
                            f"WHERE f.digest IS NOT NULL AND {has}", args)
            out.joined = self.db.execute("SELECT changes()").fetchone()[0]
            if out.joined == len(entries):  # the usual batch of a rerun: all known
                return out
            for i, digest, stage, reason, err in self.db.execute(
                    f"SELECT l.i - 1, f.digest, f.error_stage, f.error_reason, f.error FROM temp.listing l {same}"
                    f"WHERE NOT (f.digest IS NOT NULL AND {has}) ORDER BY l.i", args):
                if digest is None and stage is not None:
                    out.failures.append((i, FileRecord(entries[i][0], None, stage, reason, err)))
                else:
                    out.unknown.append(i)
        return out

    def put_batch(self, files: Sequence[FileRow], features: FeatureBatch, embeddings: Sequence[EmbeddingRow] = (),
                  run: Sequence[RunRow] = ()) -> None:
        """Store a batch of file records, features and embeddings in one transaction, and add
        ``run`` rows (:meth:`add_run`) in the same one: a killed run loses at most this batch."""
        with self.db:
            self.db.execute("BEGIN")
            if run:
                self.db.executemany("INSERT INTO temp.run VALUES (?, ?, ?, ?)", run)
            if embeddings:
                self.db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?)", embeddings)
            if len(features):
                self.db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                    feature_rows(features))
            self.db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)",
                [(r.path, r.size, r.mtime_ns, r.etag, FEATURE_VERSION, r.digest, r.error_stage, r.error_reason, r.error)
                 for r in files],
            )

    def fetch(self, digests: Sequence[bytes], fields: Sequence[str]) -> dict[str, np.ndarray]:
        """NumPy columns of ``fields`` for distinct, sorted ``digests``, in that order (a few
        columns of a batch of rows: what verification reads instead of holding every row)."""
        raw: dict[str, list[object]] = {f: [] for f in fields}
        got = 0
        cols = ", ".join(("digest", *fields))
        for s in range(0, len(digests), 900):
            chunk = list(digests[s : s + 900])
            q = (f"SELECT {cols} FROM features WHERE version=? AND digest IN ({','.join('?' * len(chunk))}) "
                 "ORDER BY digest")
            for row in self.db.execute(q, [FEATURE_VERSION, *chunk]):
                if row[0] != chunk[got - s]:
                    raise CacheError("features vanished from the cache during the run; run the scan again")
                got += 1
                for f, v in zip(fields, row[1:]):
                    raw[f].append(v)
        if got != len(digests):
            raise CacheError("features vanished from the cache during the run; run the scan again")
        return {f: decode_column(f, v) for f, v in raw.items()}

    def fetch_embeddings(self, digests: Sequence[bytes], model: str, dtype: str = "<f2") -> np.ndarray:
        """(n, d) embeddings (float16, or ``dtype``) for distinct, sorted ``digests``, in that order."""
        blobs: list[bytes] = []
        for s in range(0, len(digests), 900):
            chunk = list(digests[s : s + 900])
            q = (f"SELECT digest, vec FROM embeddings WHERE model=? AND digest IN ({','.join('?' * len(chunk))}) "
                 "ORDER BY digest")
            rows = self.db.execute(q, [model, *chunk]).fetchall()
            if [r[0] for r in rows] != chunk:
                raise CacheError("embeddings vanished from the cache during the run; run the scan again")
            blobs.extend(r[1] for r in rows)
        if not blobs:
            return np.zeros((0, 0), dtype)
        return np.frombuffer(b"".join(blobs), dtype).reshape(len(blobs), -1)

    def load_signatures(self, digests: Sequence[bytes]) -> np.ndarray:
        """(n, SIG_SIDE, SIG_SIDE) uint8 layout signatures for ``digests``."""
        out = np.zeros((len(digests), SIG_SIDE, SIG_SIDE), np.uint8)
        pos: dict[bytes, list[int]] = {}
        for i, d in enumerate(digests):
            pos.setdefault(d, []).append(i)
        keys = list(pos)
        for s in range(0, len(keys), 900):
            chunk = keys[s : s + 900]
            q = f"SELECT digest, sig FROM features WHERE version=? AND digest IN ({','.join('?' * len(chunk))})"
            for d, sig in self.db.execute(q, [FEATURE_VERSION, *chunk]):
                arr = np.frombuffer(sig, np.uint8).reshape(SIG_SIDE, SIG_SIDE)
                for i in pos[bytes(d)]:
                    out[i] = arr
        return out
