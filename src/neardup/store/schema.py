"""The cache file's tables and how it is opened: one SQLite file (WAL).

Two tables keep identity apart from content: ``files`` maps a path with its size and mtime
to the content digest (or to the failure it met), and ``features`` maps a digest and the
extractor version to the features.  The other tables are memos of dear checks (crops, detail,
lineage, local features), the last run's contents and pairs, and people's decisions.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import CacheError

__all__ = ["SCHEMA_VERSION", "SCHEMA", "default_cache_dir", "connect"]

SCHEMA_VERSION = 7
#: bytes of the store read through a memory map: none.  Every mapped page a scan touches
#: counts in its resident memory, so a map as large as the store makes a scan hold the store's
#: size; through the page cache the scan ran no slower (benchmarks/stage_memory.py,
#: docs/benchmarks.md "Memory at scale")
MMAP_BYTES = 0

#: the tables of large rows (features, embeddings, local features) are rowid tables with their
#: key as a unique index, not WITHOUT ROWID: inserting a few-kB row at a random digest's place
#: in a clustered b-tree rewrote pages all over the file (schema 7: benchmarks/cache_writes.py,
#: docs/benchmarks.md "Faster search, crop test and store writes")
SCHEMA = """
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
    windows BLOB NOT NULL,
    colour BLOB NOT NULL,
    d256 BLOB NOT NULL,
    sig BLOB NOT NULL,
    PRIMARY KEY (digest, version)
);
CREATE TABLE IF NOT EXISTS embeddings (
    digest BLOB NOT NULL,
    model TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (digest, model)
);
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
CREATE TABLE IF NOT EXISTS run_groups (
    key TEXT NOT NULL,
    component TEXT NOT NULL,
    groups TEXT NOT NULL,
    PRIMARY KEY (key, component)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS local (
    digest BLOB NOT NULL,
    version TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (digest, version)
);
"""


def default_cache_dir() -> Path:
    """``$NEARDUP_CACHE``, else ``$XDG_CACHE_HOME/neardup``, else ``~/.cache/neardup``."""
    env = os.environ.get("NEARDUP_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "neardup" if xdg else Path.home() / ".cache" / "neardup"


def connect(directory: str | os.PathLike[str] | None) -> tuple[sqlite3.Connection, str]:
    """Open (creating) the cache in ``directory/features.sqlite``, or in memory for ``None``;
    a cache of an older schema has its derived tables rebuilt.  Returns the connection and
    its target."""
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
        db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # a checkpoint is an fsync: every 64 MB of log, not every 4 MB (the default), so writing
        # features costs a tenth of what it did (a crash still loses at most the open batch)
        db.execute("PRAGMA wal_autocheckpoint=16384")
        # reads through SQLite's own 64 MB page cache (and MMAP_BYTES of memory map)
        db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        db.execute("PRAGMA cache_size=-65536")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        kept: list[str] = []
        if row is not None and row[0] != str(SCHEMA_VERSION):
            # features are derived data: an older layout is rebuilt, never a reason to stop; the
            # embeddings and local features (dear, and valid whatever the features version) are
            # moved into tables of the current layout
            db.executescript("DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS features; "
                             "DROP TABLE IF EXISTS run_contents; DROP TABLE IF EXISTS run_pairs;")
            kept = _set_aside(db, ("embeddings", "local"))
        db.executescript(SCHEMA)
        for table in kept:
            with db:
                db.execute("BEGIN")
                db.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM {table}_old")
                db.execute(f"DROP TABLE {table}_old")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    except sqlite3.DatabaseError as e:
        raise CacheError(f"cannot open the feature cache {target}: {e}; delete it or pass another --cache DIR") from None
    return db, target


def _set_aside(db: sqlite3.Connection, tables: tuple[str, ...]) -> list[str]:
    """Rename those of ``tables`` whose layout is not the current one's to ``NAME_old`` (their
    rows are copied into the new tables once they exist); returns the renamed ones."""
    layouts = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type='table'").fetchall())
    moved = []
    for table in tables:
        if table in layouts and "WITHOUT ROWID" in (layouts[table] or ""):
            db.execute(f"DROP TABLE IF EXISTS {table}_old")
            db.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
            moved.append(table)
    return moved
