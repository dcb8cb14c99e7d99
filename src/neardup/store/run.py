"""This run's files and the memory of the last run over the same roots.

The run's paths live in a private TEMP table, not in Python lists, so memory stays flat in N;
an incremental run reads the contents and verified pairs the last run saved under its key.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import CacheError
from ..features.extract import FEATURE_VERSION
from ..records import Verified
from .blobs import decode_column

__all__ = ["RunTables", "RunFile", "RunRow"]


#: contents asked for at once in an ``IN (...)`` list (SQLite's parameters a statement: 999)
_IN_LIST = 900

#: ``run_contents`` holds, under this prefix and a run's key, the fingerprint of that run's
#: contents (one row): an unchanged rerun compares it instead of reading the contents back
_FINGERPRINT = "fingerprint:"


def _fingerprint(digests: np.ndarray) -> bytes:
    """A 16-byte digest of sorted contents (k, 16)."""
    return hashlib.blake2b(np.ascontiguousarray(digests).tobytes(), digest_size=16).digest()


class RunRow(NamedTuple):
    """One file of this run with its content."""

    path: str
    digest: bytes
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class RunFile:
    """One file of this run with a given content: what the keeper's tie-breaks and the review
    page need about it (the bytes' size; the modification time, as listed)."""

    path: str
    size: int
    mtime_ns: int


class RunTables:
    """The run's TEMP table and the ``run_contents``/``run_pairs`` tables (a part of
    :class:`~neardup.store.FeatureCache`)."""

    db: sqlite3.Connection
    _run_indexed = False  # whether this run's table has its digest index (start_run resets it)

    # -- this run's files: paths live here, not in Python lists, so memory stays flat ------
    def start_run(self) -> None:
        """Start an empty list of this run's ``(path, digest, size, mtime_ns)`` (a private TEMP table)."""
        self.db.execute("DROP TABLE IF EXISTS temp.run")
        self._run_indexed = False
        self.db.execute("CREATE TEMP TABLE run (path TEXT NOT NULL, digest BLOB NOT NULL, size INTEGER NOT NULL, "
                         "mtime_ns INTEGER NOT NULL)")

    def add_run(self, rows: Sequence[RunRow]) -> None:
        """Add ``(path, digest, size, mtime_ns)`` rows to this run."""
        if rows:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT INTO temp.run VALUES (?, ?, ?, ?)", rows)

    def run_contents(self) -> tuple[np.ndarray, np.ndarray]:
        """This run's distinct digests in sorted order, (n, 16) uint8, and how many paths each has.

        Row ``i`` of every later column is the ``i``-th digest: ids that depend on the content
        only, never on which worker finished first.  Counted in NumPy from one pass over the
        run's table: a GROUP BY needs the table indexed by digest first, which an unchanged
        rerun need not pay (docs/benchmarks.md, "reruns that touch less").
        """
        first = self.db.execute("SELECT length(digest) FROM temp.run LIMIT 1").fetchone()
        width = int(first[0]) if first is not None else 16
        if self.db.execute("SELECT 1 FROM temp.run WHERE length(digest) != ? LIMIT 1", (width,)).fetchone():
            raise CacheError("digests of mixed length in the cache; delete it or pass another --cache DIR")
        parts: list[bytes] = []
        cur = self.db.execute("SELECT digest FROM temp.run")
        while rows := cur.fetchmany(65536):
            parts.append(b"".join(r[0] for r in rows))
        flat = np.frombuffer(b"".join(parts), np.uint8).reshape(-1, width)
        # as one opaque value a row, they sort as SQLite sorts blobs (byte by byte)
        distinct, counts = np.unique(flat.view(f"V{width}").ravel(), return_counts=True)
        return distinct.view(np.uint8).reshape(len(distinct), width), counts.astype(np.int32)

    def _stage_digests(self, table: str, digests: Iterable[bytes]) -> None:
        """``digests`` into a fresh TEMP ``table`` keyed by digest, for a join with the run's files."""
        self.db.execute(f"DROP TABLE IF EXISTS temp.{table}")
        self.db.execute(f"CREATE TEMP TABLE {table} (digest BLOB PRIMARY KEY)")
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT OR IGNORE INTO temp.{table} VALUES (?)", ((d,) for d in digests))

    def _index_run(self) -> None:
        """Index the run's table by digest, once its files are all in (the lookups by content)."""
        self.db.execute("CREATE INDEX IF NOT EXISTS temp.run_digest ON run (digest, path)")
        self._run_indexed = True

    def run_files(self, digests: Sequence[bytes]) -> dict[bytes, list[RunFile]]:
        """This run's files, in path order, for each of ``digests``.

        Many contents asked at once, before anything indexed the run (grouping's one call), are
        found in one pass over the run's table; fewer, or later, through its digest index (the
        local stage's calls of a few hundred each)."""
        out: dict[bytes, list[RunFile]] = {}
        keys = sorted(set(digests))
        if len(keys) > _IN_LIST and not self._run_indexed:
            self._stage_digests("wanted_files", keys)
            cur = self.db.execute("SELECT r.digest, r.path, r.size, r.mtime_ns FROM temp.run r "
                                  "JOIN temp.wanted_files w ON w.digest = r.digest ORDER BY r.digest, r.path")
            for d, path, size, mtime in cur:
                out.setdefault(bytes(d), []).append(RunFile(path, int(size), int(mtime)))
            return out
        self._index_run()
        for s in range(0, len(keys), _IN_LIST):
            chunk = keys[s : s + _IN_LIST]
            q = ("SELECT digest, path, size, mtime_ns FROM temp.run "
                 f"WHERE digest IN ({','.join('?' * len(chunk))}) ORDER BY digest, path")
            for d, path, size, mtime in self.db.execute(q, chunk):
                out.setdefault(bytes(d), []).append(RunFile(path, int(size), int(mtime)))
        return out

    def iter_run_files(self, *, chunk: int = 65536) -> Iterator[list[tuple[bytes, RunFile]]]:
        """This run's files in digest then path order, ``chunk`` at a time, with their digests."""
        self._index_run()
        cur = self.db.execute("SELECT digest, path, size, mtime_ns FROM temp.run ORDER BY digest, path")
        while rows := cur.fetchmany(chunk):
            yield [(bytes(d), RunFile(path, int(size), int(mtime))) for d, path, size, mtime in rows]

    # -- features ----------------------------------------------------------------------
    def iter_run_features(self, fields: Sequence[str], *, chunk: int = 8192,
                          only: np.ndarray | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Stream NumPy columns of ``fields`` (and ``digest``, (k, 16) uint8) for this run's
        distinct digests, in digest order, ``chunk`` rows at a time; with ``only`` ((k, 16)
        uint8), for those digests alone (the rest come from a saved snapshot)."""
        cols = ", ".join(f"f.{c}" for c in ("digest", *fields))
        source = "(SELECT DISTINCT digest FROM temp.run)"
        if only is None:
            self._index_run()  # the distinct digests in order, from the index
        else:
            self._stage_digests("wanted", (d.tobytes() for d in only))
            source = "temp.wanted"
        cur = self.db.execute(
            f"SELECT {cols} FROM {source} r "
            "JOIN features f ON f.digest = r.digest AND f.version = ? ORDER BY f.digest",
            (FEATURE_VERSION,),
        )
        names = ("digest", *fields)
        while rows := cur.fetchmany(chunk):
            out = {f: decode_column(f, [r[i] for r in rows]) for i, f in enumerate(names) if f != "digest"}
            out["digest"] = np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(len(rows), -1)
            yield out

    def iter_run_embeddings(self, model: str, *, chunk: int = 8192) -> Iterator[np.ndarray]:
        """This run's embeddings in digest (= row) order, a chunk at a time."""
        self._index_run()
        cur = self.db.execute(
            "SELECT e.vec FROM (SELECT DISTINCT digest FROM temp.run) r "
            "JOIN embeddings e ON e.digest = r.digest AND e.model = ? ORDER BY r.digest", (model,))
        while rows := cur.fetchmany(chunk):
            yield np.frombuffer(b"".join(r[0] for r in rows), "<f2").reshape(len(rows), -1)

    def iter_run_blobs(self, model: str, *, chunk: int = 4096) -> Iterator[list[bytes | None]]:
        """This run's stored vectors by ``model`` in digest (= row) order, a chunk at a time, as
        raw bytes (None for a content without one)."""
        self._index_run()
        cur = self.db.execute(
            "SELECT e.vec FROM (SELECT DISTINCT digest FROM temp.run) r "
            "LEFT JOIN embeddings e ON e.digest = r.digest AND e.model = ? ORDER BY r.digest", (model,))
        while rows := cur.fetchmany(chunk):
            yield [None if r[0] is None else bytes(r[0]) for r in rows]

    # -- the last finished run over the same roots: an incremental run searches only what is new
    def previous_run(self, key: str, *, current: np.ndarray | None = None) -> np.ndarray | None:
        """The sorted contents (k, 16) of the last run saved under ``key``, or None.  Given this
        run's own sorted contents ``current``, when the last run saved exactly those (their
        fingerprint, saved beside them, says so) they are returned as they are, unread."""
        if current is not None and len(current):
            saved = self.db.execute("SELECT digest FROM run_contents WHERE key=?", (_FINGERPRINT + key,)).fetchone()
            # and as many as there are: a writer that does not keep the fingerprint (an older
            # neardup) may have changed the contents since
            if (saved is not None and bytes(saved[0]) == _fingerprint(current)
                    and self.db.execute("SELECT count(*) FROM run_contents WHERE key=?", (key,)).fetchone()[0]
                    == len(current)):
                return current
        rows = self.db.execute("SELECT digest FROM run_contents WHERE key=? ORDER BY digest", (key,)).fetchall()
        if not rows:
            return None
        return np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(len(rows), -1).copy()

    def previous_pairs(self, key: str, digests: np.ndarray) -> Verified:
        """The verified pairs saved under ``key`` whose two contents are both in ``digests``
        (sorted (n, 16), row i is digest i), as row ids."""
        flat = np.ascontiguousarray(digests).view(f"V{digests.shape[1]}").ravel()
        found: list[Verified] = []
        cur = self.db.execute("SELECT a, b, stage, d256, p64, colour, ncc FROM run_pairs WHERE key=?", (key,))
        while rows := cur.fetchmany(65536):
            a = np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(len(rows), -1).view(flat.dtype).ravel()
            b = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(len(rows), -1).view(flat.dtype).ravel()
            ia = np.searchsorted(flat, a)
            ib = np.searchsorted(flat, b)
            ok = (ia < len(flat)) & (ib < len(flat))
            ok[ok] &= (flat[ia[ok]] == a[ok]) & (flat[ib[ok]] == b[ok])
            sel = np.flatnonzero(ok).tolist()

            def column(i: int, dtype: type, sel: list[int] = sel, rows: list[Any] = rows) -> np.ndarray:
                return np.array([rows[j][i] if rows[j][i] is not None else np.nan for j in sel]).astype(dtype)

            found.append(Verified(ia[sel].astype(np.int64), ib[sel].astype(np.int64), column(2, np.uint8),
                                  column(3, np.int16), column(4, np.int16), column(5, np.float32),
                                  column(6, np.float32)))
        return Verified.concat(found)

    def previous_groups(self, key: str, components: Sequence[str]) -> dict[str, str]:
        """The groups (JSON) the last run under ``key`` made of each of ``components`` (their
        signatures) it had too."""
        out: dict[str, str] = {}
        for s in range(0, len(components), _IN_LIST):
            chunk = list(components[s : s + _IN_LIST])
            q = f"SELECT component, groups FROM run_groups WHERE key=? AND component IN ({','.join('?' * len(chunk))})"
            out.update(self.db.execute(q, [key, *chunk]).fetchall())
        return out

    def save_groups(self, key: str, groups: dict[str, str]) -> None:
        """This run's groups by component signature under ``key``, replacing the last run's."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM run_groups WHERE key=?", (key,))
            self.db.executemany("INSERT OR REPLACE INTO run_groups VALUES (?, ?, ?)",
                                ((key, c, g) for c, g in groups.items()))

    def save_run(self, key: str, digests: np.ndarray, pairs: Verified, before: np.ndarray | None = None) -> None:
        """Remember this run's contents and verified ``pairs`` (row ids into ``digests``) under ``key``.

        ``before`` (what :meth:`previous_run` returned) lets only the difference be written: an
        unchanged rerun of a million images writes nothing."""
        def d(i: int) -> bytes:
            return digests[i].tobytes()

        with self.db:
            self.db.execute("BEGIN")
            if before is None:
                self.db.execute("DELETE FROM run_contents WHERE key=?", (key,))
                self.db.executemany("INSERT INTO run_contents VALUES (?, ?)", ((key, x.tobytes()) for x in digests))
            else:
                cur = np.ascontiguousarray(digests).view(f"V{digests.shape[1]}").ravel()
                old = np.ascontiguousarray(before).view(f"V{before.shape[1]}").ravel()
                gone = np.setdiff1d(old, cur, assume_unique=True)
                new = np.setdiff1d(cur, old, assume_unique=True)
                self.db.executemany("DELETE FROM run_contents WHERE key=? AND digest=?",
                                    ((key, x.tobytes()) for x in gone))
                self.db.executemany("INSERT INTO run_contents VALUES (?, ?)", ((key, x.tobytes()) for x in new))
            # in the same table as the contents, so that whatever drops them drops it too
            self.db.execute("DELETE FROM run_contents WHERE key=?", (_FINGERPRINT + key,))
            self.db.execute("INSERT INTO run_contents VALUES (?, ?)", (_FINGERPRINT + key, _fingerprint(digests)))
            self.db.execute("DELETE FROM run_pairs WHERE key=?", (key,))
            p = pairs
            self.db.executemany(
                "INSERT OR REPLACE INTO run_pairs VALUES (?,?,?,?,?,?,?,?)",
                ((key, d(x), d(y), st, dd, pp, cc, None if nc != nc else nc)
                 for x, y, st, dd, pp, cc, nc in zip(p.a.tolist(), p.b.tolist(), p.stage.tolist(), p.d256.tolist(),
                                                     p.p64.tolist(), p.colour.tolist(), p.ncc.tolist())))
