"""People's decisions: pairs of contents judged "not a duplicate".  Unlike everything else
in the cache these are not derived data: a schema or digest change keeps them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..features.extract import DIGEST

__all__ = ["DecisionTables"]


class DecisionTables:
    """The ``not_duplicates`` table (a part of :class:`~neardup.store.FeatureCache`)."""

    db: sqlite3.Connection

    # -- people's decisions ----------------------------------------------------------------
    def put_not_duplicates(self, pairs: Sequence[tuple[bytes, bytes]]) -> int:
        """Remember content pairs a person judged "not a duplicate"; later scans keep them apart.
        Returns how many were new.  Unlike features, these are not derived data: a schema
        change keeps them."""
        rows = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
        with self.db:
            self.db.execute("BEGIN")
            before = self.db.execute("SELECT COUNT(*) FROM not_duplicates").fetchone()[0]
            self.db.executemany("INSERT OR IGNORE INTO not_duplicates VALUES (?, ?)", sorted(rows))
            after = self.db.execute("SELECT COUNT(*) FROM not_duplicates").fetchone()[0]
        return int(after - before)

    def not_duplicates(self) -> set[tuple[bytes, bytes]]:
        return {(bytes(a), bytes(b)) for a, b in self.db.execute("SELECT a, b FROM not_duplicates")}

    def keep_legacy_decisions(self) -> None:
        """A cache written with an older content digest: before its file records are replaced,
        remember which paths had the contents that people marked "not a duplicate", so the
        decisions carry over to the new digests (:meth:`translate_decisions`)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='digest'").fetchone()
        if row is not None and row[0] == DIGEST:
            return
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("CREATE TABLE IF NOT EXISTS legacy_paths (path TEXT NOT NULL, digest BLOB NOT NULL)")
            self.db.execute("INSERT INTO legacy_paths SELECT f.path, f.digest FROM files f WHERE f.digest IN "
                             "(SELECT a FROM not_duplicates UNION SELECT b FROM not_duplicates)")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('digest', ?)", (DIGEST,))

    def translate_decisions(self) -> int:
        """Carry "not a duplicate" decisions made under an older digest over to this run's
        digests of the same paths; returns how many pairs were added."""
        if self.db.execute("SELECT name FROM sqlite_master WHERE name='legacy_paths'").fetchone() is None:
            return 0
        rows = self.db.execute(
            "SELECT DISTINCT ra.digest, rb.digest FROM not_duplicates n "
            "JOIN legacy_paths la ON la.digest = n.a JOIN legacy_paths lb ON lb.digest = n.b "
            "JOIN temp.run ra ON ra.path = la.path JOIN temp.run rb ON rb.path = lb.path").fetchall()
        return self.put_not_duplicates([(bytes(a), bytes(b)) for a, b in rows]) if rows else 0
