"""The feature cache: one SQLite file, its tables split by concern (features, run, memo,
decisions), with one transaction per batch."""

from __future__ import annotations

import os
import sqlite3

from ..errors import CacheError
from .decisions import DecisionTables
from .features import FeatureTables
from .memo import MemoTables
from .run import RunTables
from .schema import connect

__all__ = ["FeatureCache"]


class FeatureCache(FeatureTables, RunTables, MemoTables, DecisionTables):
    """Feature cache in ``directory/features.sqlite``.

    Use as a context manager; a ``FeatureCache(None)`` keeps everything in memory, which
    tests and one-off scans (``--no-cache``) use.
    """

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.db, self.path = connect(directory)
        try:
            self.keep_legacy_decisions()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise CacheError(f"cannot open the feature cache {self.path}: {e}; delete it or pass another --cache DIR"
                             ) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_ok(self) -> bool:
        return bool(self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
