"""The persistent feature cache: one SQLite file (WAL), features and quality facts only.

Two tables keep identity apart from content: ``files`` maps a path with its size and mtime
to the content digest (or to the failure it met), and ``features`` maps a digest and the
extractor version to the features.  A renamed or copied file costs a read and a digest, never
a decode; a changed file is seen by its size or mtime; a new extractor version recomputes.
Writes happen in one transaction per batch, so a killed run loses at most the batch in flight.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError
from ..features.extract import DIGEST, FEATURE_VERSION, SIG_SIDE, FeatureBatch
from ..features.quality import QUALITY_FIELDS

__all__ = ["FeatureCache", "FeatureReader", "FileRecord", "RunFile", "default_cache_dir", "SCHEMA_VERSION"]

SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    etag TEXT,
    version TEXT NOT NULL,
    digest BLOB,
    error_stage TEXT,
    error_reason TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS features (
    digest BLOB NOT NULL,
    version TEXT NOT NULL,
    canon INTEGER NOT NULL,
    alt_mask INTEGER NOT NULL,
    energy REAL NOT NULL,
    content_side INTEGER NOT NULL,
    p64 BLOB NOT NULL,
    c64 BLOB NOT NULL,
    quality BLOB NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    whash INTEGER NOT NULL,
    colour BLOB NOT NULL,
    d256 BLOB NOT NULL,
    sig BLOB NOT NULL,
    PRIMARY KEY (digest, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS embeddings (
    digest BLOB NOT NULL,
    model TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (digest, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS crops (
    a BLOB NOT NULL,
    b BLOB NOT NULL,
    version TEXT NOT NULL,
    ncc REAL NOT NULL,
    PRIMARY KEY (a, b, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS not_duplicates (
    a BLOB NOT NULL,
    b BLOB NOT NULL,
    PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS detail (
    digest BLOB NOT NULL,
    version TEXT NOT NULL,
    scale INTEGER NOT NULL,
    softness REAL NOT NULL,
    PRIMARY KEY (digest, version, scale)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lineage (
    a BLOB NOT NULL,
    b BLOB NOT NULL,
    version TEXT NOT NULL,
    made_from REAL NOT NULL,
    kind INTEGER NOT NULL,
    PRIMARY KEY (a, b, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_contents (
    key TEXT NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (key, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_pairs (
    key TEXT NOT NULL,
    a BLOB NOT NULL,
    b BLOB NOT NULL,
    stage INTEGER NOT NULL,
    d256 INTEGER NOT NULL,
    p64 INTEGER NOT NULL,
    colour REAL NOT NULL,
    ncc REAL,
    PRIMARY KEY (key, a, b)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS local (
    digest BLOB NOT NULL,
    version TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (digest, version)
) WITHOUT ROWID;
"""


def default_cache_dir() -> Path:
    """``$NEARDUP_CACHE``, else ``$XDG_CACHE_HOME/neardup``, else ``~/.cache/neardup``."""
    env = os.environ.get("NEARDUP_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "neardup" if xdg else Path.home() / ".cache" / "neardup"


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What the cache knows about one path: its digest, or the failure it met."""

    path: str
    digest: bytes | None
    error_stage: str | None = None
    error_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunFile:
    """One file of this run with a given content: what the keeper's tie-breaks and the review
    page need about it (the bytes' size; the modification time, as listed)."""

    path: str
    size: int
    mtime_ns: int


#: how each feature blob decodes: dtype and shape of one row (scalars are stored as numbers)
_BLOBS: dict[str, tuple[str, tuple[int, ...]]] = {
    "p64": ("<u8", (8,)), "c64": ("<u8", (8,)), "d256": ("<u8", (8, 4)), "colour": ("u1", (48,)),
    "sig": ("u1", (SIG_SIDE, SIG_SIDE)), "quality": ("<f8", (len(QUALITY_FIELDS),)),
}


def _column(field: str, values: list[object]) -> np.ndarray:
    """One feature column as a NumPy array: blobs joined and decoded at once, numbers as they are."""
    if field not in _BLOBS:
        return np.asarray(values)
    dtype, shape = _BLOBS[field]
    return np.frombuffer(b"".join(values), dtype).reshape(len(values), *shape)  # type: ignore[arg-type]


def _blobs(a: np.ndarray, dtype: str) -> list[bytes]:
    """Row ``i`` of ``a`` as the bytes of one cache blob, for every row at once."""
    flat = np.ascontiguousarray(a, dtype=dtype).reshape(len(a), -1)
    raw = flat.tobytes()
    k = flat.shape[1] * flat.itemsize
    return [raw[i : i + k] for i in range(0, len(raw), k)]


def _feature_rows(f: FeatureBatch) -> list[tuple[object, ...]]:
    """The rows of the features table for a batch, built column by column.  The columns the
    candidate search loads come first and the big blobs last, so that loading them reads each
    row's first few hundred bytes, never its overflow pages."""
    n = len(f)
    return list(zip(
        _blobs(f.digest, "u1"), [FEATURE_VERSION] * n, f.canon.tolist(), f.alt_mask.tolist(), f.energy.tolist(),
        f.content_side.tolist(), _blobs(f.p64, "<u8"), _blobs(f.c64, "<u8"), _blobs(f.quality, "<f8"),
        f.width.tolist(), f.height.tolist(), f.format, f.whash.astype(np.uint64).view(np.int64).tolist(),
        _blobs(f.colour, "u1"), _blobs(f.d256, "<u8"), _blobs(f.sig, "u1"),
    ))


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


class FeatureCache:
    """Feature cache in ``directory/features.sqlite``.

    Use as a context manager; a ``FeatureCache(None)`` keeps everything in memory, which
    tests and one-off scans (``--no-cache``) use.
    """

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        if directory is None:
            target = ":memory:"
        else:
            d = Path(directory)
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise CacheError(f"cannot create the cache directory {d}: {e.strerror}; pass --cache DIR") from None
            target = str(d / "features.sqlite")
        try:
            self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # a checkpoint is an fsync: every 64 MB of log, not every 4 MB (the default), so writing
            # features costs a tenth of what it did (a crash still loses at most the open batch)
            self._db.execute("PRAGMA wal_autocheckpoint=16384")
            # reads through a memory map and a 64 MB page cache: a rerun's lookups, the load and
            # verification read pages, not syscalls
            self._db.execute("PRAGMA mmap_size=4294967296")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is not None and row[0] != str(SCHEMA_VERSION):
                # features are derived data: an older layout is rebuilt, never a reason to stop
                self._db.executescript("DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS features; "
                                       "DROP TABLE IF EXISTS run_contents; DROP TABLE IF EXISTS run_pairs;")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self._keep_legacy_decisions()
        except sqlite3.DatabaseError as e:
            raise CacheError(f"cannot open the feature cache {target}: {e}; delete it or pass another --cache DIR") from None
        self.path = target

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        has, join, args = "1", "", [lo, hi, FEATURE_VERSION]
        if model is not None:
            has = "e.digest IS NOT NULL"
            join = "LEFT JOIN embeddings e ON e.digest = f.digest AND e.model = ? "
            args.insert(0, model)
        q = ("SELECT f.path, f.size, f.mtime_ns, f.etag, f.digest, f.error_stage, f.error_reason, f.error, "
             f"{has} FROM files f {join}WHERE f.path BETWEEN ? AND ? AND f.version = ?")
        for path, size, mtime, etag, digest, stage, reason, err, ok in self._db.execute(q, args):
            if want.get(path) != (size, mtime, etag):
                continue
            if digest is not None and ok:
                out[path] = FileRecord(path, bytes(digest))
            elif digest is None and stage is not None:
                out[path] = FileRecord(path, None, stage, reason, err)
        return out

    def put_batch(
        self,
        files: Sequence[tuple[str, int, int, bytes | None, str | None, str | None, str | None]
                        | tuple[str, int, int, bytes | None, str | None, str | None, str | None, str | None]],
        features: FeatureBatch,
        embeddings: Sequence[tuple[bytes, str, bytes]] = (),
        run: Sequence[tuple[str, bytes, int, int]] = (),
    ) -> None:
        """Store a batch of file records, features and ``(digest, model, vec)`` in one transaction,
        and add ``run`` rows (:meth:`add_run`) in the same one.

        A file record is ``(path, size, mtime_ns, digest, error_stage, error_reason, error[, etag])``.
        """
        with self._db:
            self._db.execute("BEGIN")
            if run:
                self._db.executemany("INSERT INTO temp.run VALUES (?, ?, ?, ?)", run)
            if embeddings:
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?)", embeddings)
            if len(features):
                self._db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                     _feature_rows(features))
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)",
                [(f[0], f[1], f[2], f[7] if len(f) > 7 else None, FEATURE_VERSION, *f[3:7]) for f in files],
            )

    # -- this run's files: paths live here, not in Python lists, so memory stays flat ------
    def start_run(self) -> None:
        """Start an empty list of this run's ``(path, digest, size, mtime_ns)`` (a private TEMP table)."""
        self._db.execute("DROP TABLE IF EXISTS temp.run")
        self._db.execute("CREATE TEMP TABLE run (path TEXT NOT NULL, digest BLOB NOT NULL, size INTEGER NOT NULL, "
                         "mtime_ns INTEGER NOT NULL)")

    def add_run(self, rows: Sequence[tuple[str, bytes, int, int]]) -> None:
        """Add ``(path, digest, size, mtime_ns)`` rows to this run."""
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO temp.run VALUES (?, ?, ?, ?)", rows)

    def run_contents(self) -> tuple[np.ndarray, np.ndarray]:
        """This run's distinct digests in sorted order, (n, 16) uint8, and how many paths each has.

        Row ``i`` of every later column is the ``i``-th digest: ids that depend on the content
        only, never on which worker finished first.
        """
        self._db.execute("CREATE INDEX IF NOT EXISTS temp.run_digest ON run (digest, path)")
        blobs: list[bytes] = []
        counts: list[int] = []
        cur = self._db.execute("SELECT digest, count(*) FROM temp.run GROUP BY digest ORDER BY digest")
        while rows := cur.fetchmany(65536):
            for d, c in rows:
                blobs.append(d)
                counts.append(c)
        n = len(blobs)
        width = len(blobs[0]) if n else 16
        if any(len(b) != width for b in blobs):
            raise CacheError("digests of mixed length in the cache; delete it or pass another --cache DIR")
        digests = np.frombuffer(b"".join(blobs), np.uint8).reshape(n, width).copy()
        return digests, np.asarray(counts, dtype=np.int32)

    def run_files(self, digests: Sequence[bytes]) -> dict[bytes, list[RunFile]]:
        """This run's files, in path order, for each of ``digests``."""
        out: dict[bytes, list[RunFile]] = {}
        keys = sorted(set(digests))
        for s in range(0, len(keys), 900):
            chunk = keys[s : s + 900]
            q = ("SELECT digest, path, size, mtime_ns FROM temp.run "
                 f"WHERE digest IN ({','.join('?' * len(chunk))}) ORDER BY digest, path")
            for d, path, size, mtime in self._db.execute(q, chunk):
                out.setdefault(bytes(d), []).append(RunFile(path, int(size), int(mtime)))
        return out

    # -- features ----------------------------------------------------------------------
    def iter_run_features(self, fields: Sequence[str], *, chunk: int = 8192) -> Iterator[dict[str, np.ndarray]]:
        """Stream NumPy columns of ``fields`` (and ``digest``, (k, 16) uint8) for this run's
        distinct digests, in digest order, ``chunk`` rows at a time."""
        cols = ", ".join(f"f.{c}" for c in ("digest", *fields))
        cur = self._db.execute(
            f"SELECT {cols} FROM (SELECT DISTINCT digest FROM temp.run) r "
            "JOIN features f ON f.digest = r.digest AND f.version = ? ORDER BY f.digest",
            (FEATURE_VERSION,),
        )
        names = ("digest", *fields)
        while rows := cur.fetchmany(chunk):
            out = {f: _column(f, [r[i] for r in rows]) for i, f in enumerate(names) if f != "digest"}
            out["digest"] = np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(len(rows), -1)
            yield out

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
            for row in self._db.execute(q, [FEATURE_VERSION, *chunk]):
                if row[0] != chunk[got - s]:
                    raise CacheError("features vanished from the cache during the run; run the scan again")
                got += 1
                for f, v in zip(fields, row[1:]):
                    raw[f].append(v)
        if got != len(digests):
            raise CacheError("features vanished from the cache during the run; run the scan again")
        return {f: _column(f, v) for f, v in raw.items()}

    def fetch_embeddings(self, digests: Sequence[bytes], model: str) -> np.ndarray:
        """(n, d) float16 embeddings for distinct, sorted ``digests``, in that order."""
        blobs: list[bytes] = []
        for s in range(0, len(digests), 900):
            chunk = list(digests[s : s + 900])
            q = (f"SELECT digest, vec FROM embeddings WHERE model=? AND digest IN ({','.join('?' * len(chunk))}) "
                 "ORDER BY digest")
            rows = self._db.execute(q, [model, *chunk]).fetchall()
            if [r[0] for r in rows] != chunk:
                raise CacheError("embeddings vanished from the cache during the run; run the scan again")
            blobs.extend(r[1] for r in rows)
        if not blobs:
            return np.zeros((0, 0), np.float16)
        return np.frombuffer(b"".join(blobs), "<f2").reshape(len(blobs), -1)

    def iter_run_embeddings(self, model: str, *, chunk: int = 8192) -> Iterator[np.ndarray]:
        """This run's embeddings in digest (= row) order, a chunk at a time."""
        cur = self._db.execute(
            "SELECT e.vec FROM (SELECT DISTINCT digest FROM temp.run) r "
            "JOIN embeddings e ON e.digest = r.digest AND e.model = ? ORDER BY r.digest", (model,))
        while rows := cur.fetchmany(chunk):
            yield np.frombuffer(b"".join(r[0] for r in rows), "<f2").reshape(len(rows), -1)

    def get_crops(self, pairs: Sequence[tuple[bytes, bytes]], version: str) -> dict[tuple[bytes, bytes], float]:
        """Cached crop-test correlations for digest pairs (the dear part of verification, so a
        rerun or an incremental run does not pay it again)."""
        out: dict[tuple[bytes, bytes], float] = {}
        for s in range(0, len(pairs), 400):
            chunk = pairs[s : s + 400]
            q = ("SELECT a, b, ncc FROM crops WHERE version=? AND (a, b) IN (VALUES "
                 + ",".join("(?,?)" for _ in chunk) + ")")
            args: list[object] = [version]
            for x, y in chunk:
                args += [x, y]
            for x, y, v in self._db.execute(q, args):
                out[(bytes(x), bytes(y))] = float(v)
        return out

    def put_crops(self, rows: Sequence[tuple[bytes, bytes, str, float]]) -> None:
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO crops VALUES (?,?,?,?)", rows)

    def get_detail(self, keys: Sequence[tuple[bytes, int]], version: str) -> dict[tuple[bytes, int], float]:
        """Softness measured by the keeper check, by ``(digest, scale)``."""
        out: dict[tuple[bytes, int], float] = {}
        for s in range(0, len(keys), 400):
            chunk = keys[s : s + 400]
            q = ("SELECT digest, scale, softness FROM detail WHERE version=? AND (digest, scale) IN (VALUES "
                 + ",".join("(?,?)" for _ in chunk) + ")")
            args: list[object] = [version]
            for d, sc in chunk:
                args += [d, sc]
            for d, sc, v in self._db.execute(q, args):
                out[(bytes(d), int(sc))] = float(v)
        return out

    def put_detail(self, rows: Sequence[tuple[bytes, str, int, float]]) -> None:
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO detail VALUES (?,?,?,?)", rows)

    def get_lineage(self, pairs: Sequence[tuple[bytes, bytes]], version: str
                    ) -> dict[tuple[bytes, bytes], tuple[float, int]]:
        """The keeper's lineage verdicts, by (member, rival) digest pair: ``(made_from, kind)``,
        made_from < 0 where nothing was found."""
        out: dict[tuple[bytes, bytes], tuple[float, int]] = {}
        for s in range(0, len(pairs), 400):
            chunk = pairs[s : s + 400]
            q = ("SELECT a, b, made_from, kind FROM lineage WHERE version=? AND (a, b) IN (VALUES "
                 + ",".join("(?,?)" for _ in chunk) + ")")
            args: list[object] = [version]
            for x, y in chunk:
                args += [x, y]
            for x, y, v, k in self._db.execute(q, args):
                out[(bytes(x), bytes(y))] = (float(v), int(k))
        return out

    def put_lineage(self, rows: Sequence[tuple[bytes, bytes, str, float, int]]) -> None:
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO lineage VALUES (?,?,?,?,?)", rows)

    def get_local(self, digests: Sequence[bytes], version: str) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        keys = sorted(set(digests))
        for s in range(0, len(keys), 900):
            chunk = keys[s : s + 900]
            q = f"SELECT digest, data FROM local WHERE version=? AND digest IN ({','.join('?' * len(chunk))})"
            for d, data in self._db.execute(q, [version, *chunk]):
                out[bytes(d)] = data
        return out

    def put_local(self, rows: Sequence[tuple[bytes, str, bytes]]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO local VALUES (?,?,?)", rows)

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
            for d, sig in self._db.execute(q, [FEATURE_VERSION, *chunk]):
                arr = np.frombuffer(sig, np.uint8).reshape(SIG_SIDE, SIG_SIDE)
                for i in pos[bytes(d)]:
                    out[i] = arr
        return out

    # -- the last finished run over the same roots: an incremental run searches only what is new
    def previous_run(self, key: str) -> np.ndarray | None:
        """The sorted contents (k, 16) of the last run saved under ``key``, or None."""
        rows = self._db.execute("SELECT digest FROM run_contents WHERE key=? ORDER BY digest", (key,)).fetchall()
        if not rows:
            return None
        return np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(len(rows), -1).copy()

    def previous_pairs(self, key: str, digests: np.ndarray) -> Any:
        """The verified pairs saved under ``key`` whose two contents are both in ``digests``
        (sorted (n, 16), row i is digest i), as a ``Verified`` of row ids."""
        from ..verify.rules import Verified

        flat = np.ascontiguousarray(digests).view(f"V{digests.shape[1]}").ravel()
        out: dict[str, list[object]] = {k: [] for k in ("a", "b", "stage", "d256", "p64", "colour", "ncc")}
        cur = self._db.execute("SELECT a, b, stage, d256, p64, colour, ncc FROM run_pairs WHERE key=?", (key,))
        while rows := cur.fetchmany(65536):
            a = np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(len(rows), -1)
            b = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(len(rows), -1)
            ia = np.searchsorted(flat, a.view(flat.dtype).ravel())
            ib = np.searchsorted(flat, b.view(flat.dtype).ravel())
            ok = (ia < len(flat)) & (ib < len(flat))
            ok[ok] &= (flat[ia[ok]] == a.view(flat.dtype).ravel()[ok]) & (flat[ib[ok]] == b.view(flat.dtype).ravel()[ok])
            sel = np.flatnonzero(ok)
            out["a"].append(ia[sel])
            out["b"].append(ib[sel])
            for k, i in (("stage", 2), ("d256", 3), ("p64", 4), ("colour", 5), ("ncc", 6)):
                out[k].append(np.array([rows[j][i] if rows[j][i] is not None else np.nan for j in sel.tolist()]))
        if not out["a"]:
            z = np.zeros(0, np.int64)
            return Verified(z, z, z.astype(np.uint8), z.astype(np.int16), z.astype(np.int16), z.astype(np.float32),
                            z.astype(np.float32))
        cat: dict[str, np.ndarray] = {k: np.concatenate(v) for k, v in out.items()}  # type: ignore[misc, arg-type]
        return Verified(cat["a"].astype(np.int64), cat["b"].astype(np.int64), cat["stage"].astype(np.uint8),
                        cat["d256"].astype(np.int16), cat["p64"].astype(np.int16), cat["colour"].astype(np.float32),
                        cat["ncc"].astype(np.float32))

    def save_run(self, key: str, digests: np.ndarray, a: np.ndarray, b: np.ndarray, stage: np.ndarray,
                 d256: np.ndarray, p64: np.ndarray, colour: np.ndarray, ncc: np.ndarray,
                 before: np.ndarray | None = None) -> None:
        """Remember this run's contents and verified pairs (row ids into ``digests``) under ``key``.

        ``before`` (what :meth:`previous_run` returned) lets only the difference be written: an
        unchanged rerun of a million images writes nothing."""
        def d(i: int) -> bytes:
            return digests[i].tobytes()

        with self._db:
            self._db.execute("BEGIN")
            if before is None:
                self._db.execute("DELETE FROM run_contents WHERE key=?", (key,))
                self._db.executemany("INSERT INTO run_contents VALUES (?, ?)", ((key, x.tobytes()) for x in digests))
            else:
                cur = np.ascontiguousarray(digests).view(f"V{digests.shape[1]}").ravel()
                old = np.ascontiguousarray(before).view(f"V{before.shape[1]}").ravel()
                gone = np.setdiff1d(old, cur, assume_unique=True)
                new = np.setdiff1d(cur, old, assume_unique=True)
                self._db.executemany("DELETE FROM run_contents WHERE key=? AND digest=?",
                                     ((key, x.tobytes()) for x in gone))
                self._db.executemany("INSERT INTO run_contents VALUES (?, ?)", ((key, x.tobytes()) for x in new))
            self._db.execute("DELETE FROM run_pairs WHERE key=?", (key,))
            self._db.executemany(
                "INSERT OR REPLACE INTO run_pairs VALUES (?,?,?,?,?,?,?,?)",
                ((key, d(x), d(y), st, dd, pp, cc, None if nc != nc else nc)
                 for x, y, st, dd, pp, cc, nc in zip(a.tolist(), b.tolist(), stage.tolist(), d256.tolist(),
                                                     p64.tolist(), colour.tolist(), ncc.tolist())))

    # -- people's decisions ----------------------------------------------------------------
    def put_not_duplicates(self, pairs: Sequence[tuple[bytes, bytes]]) -> int:
        """Remember content pairs a person judged "not a duplicate"; later scans keep them apart.
        Returns how many were new.  Unlike features, these are not derived data: a schema
        change keeps them."""
        rows = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
        with self._db:
            self._db.execute("BEGIN")
            before = self._db.execute("SELECT COUNT(*) FROM not_duplicates").fetchone()[0]
            self._db.executemany("INSERT OR IGNORE INTO not_duplicates VALUES (?, ?)", sorted(rows))
            after = self._db.execute("SELECT COUNT(*) FROM not_duplicates").fetchone()[0]
        return int(after - before)

    def not_duplicates(self) -> set[tuple[bytes, bytes]]:
        return {(bytes(a), bytes(b)) for a, b in self._db.execute("SELECT a, b FROM not_duplicates")}

    def _keep_legacy_decisions(self) -> None:
        """A cache written with an older content digest: before its file records are replaced,
        remember which paths had the contents that people marked "not a duplicate", so the
        decisions carry over to the new digests (:meth:`translate_decisions`)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='digest'").fetchone()
        if row is not None and row[0] == DIGEST:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("CREATE TABLE IF NOT EXISTS legacy_paths (path TEXT NOT NULL, digest BLOB NOT NULL)")
            self._db.execute("INSERT INTO legacy_paths SELECT f.path, f.digest FROM files f WHERE f.digest IN "
                             "(SELECT a FROM not_duplicates UNION SELECT b FROM not_duplicates)")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('digest', ?)", (DIGEST,))

    def translate_decisions(self) -> int:
        """Carry "not a duplicate" decisions made under an older digest over to this run's
        digests of the same paths; returns how many pairs were added."""
        if self._db.execute("SELECT name FROM sqlite_master WHERE name='legacy_paths'").fetchone() is None:
            return 0
        rows = self._db.execute(
            "SELECT DISTINCT ra.digest, rb.digest FROM not_duplicates n "
            "JOIN legacy_paths la ON la.digest = n.a JOIN legacy_paths lb ON lb.digest = n.b "
            "JOIN temp.run ra ON ra.path = la.path JOIN temp.run rb ON rb.path = lb.path").fetchall()
        return self.put_not_duplicates([(bytes(a), bytes(b)) for a, b in rows]) if rows else 0

    def integrity_ok(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
