"""Memos of the dear checks, by content: crop correlations, the keeper's detail and lineage
readings, local features.  Each row carries the version of the check that made it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["MemoTables", "CropRow", "DetailRow", "LineageRow", "LocalRow"]


class CropRow(NamedTuple):
    a: bytes
    b: bytes
    version: str
    ncc: float


class DetailRow(NamedTuple):
    digest: bytes
    version: str
    scale: int
    softness: float


class LineageRow(NamedTuple):
    member: bytes
    rival: bytes
    version: str
    made_from: float
    kind: int


class LocalRow(NamedTuple):
    digest: bytes
    version: str
    data: bytes


class MemoTables:
    """The ``crops``, ``detail``, ``lineage`` and ``local`` tables (a part of :class:`~neardup.store.FeatureCache`)."""

    db: sqlite3.Connection

    def _lookup(self, table: str, key: tuple[str, str], value: str, keys: Sequence[tuple[Any, Any]],
                version: str) -> dict[tuple[Any, Any], tuple[Any, ...]]:
        """Rows of ``table`` for two-column ``keys`` of one ``version``, 400 keys a query."""
        out: dict[tuple[Any, Any], tuple[Any, ...]] = {}
        for s in range(0, len(keys), 400):
            chunk = keys[s : s + 400]
            q = (f"SELECT {key[0]}, {key[1]}, {value} FROM {table} WHERE version=? AND ({key[0]}, {key[1]}) IN (VALUES "
                 + ",".join("(?,?)" for _ in chunk) + ")")
            args: list[object] = [version]
            for x, y in chunk:
                args += [x, y]
            for x, y, *v in self.db.execute(q, args):
                out[(x, y)] = tuple(v)
        return out

    def get_crops(self, pairs: Sequence[tuple[bytes, bytes]], version: str) -> dict[tuple[bytes, bytes], float]:
        """Cached crop-test correlations for digest pairs (the dear part of verification, so a
        rerun or an incremental run does not pay it again)."""
        got = self._lookup("crops", ("a", "b"), "ncc", pairs, version)
        return {(bytes(x), bytes(y)): float(v[0]) for (x, y), v in got.items()}

    def put_crops(self, rows: Sequence[CropRow]) -> None:
        if rows:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO crops VALUES (?,?,?,?)", rows)

    def get_detail(self, keys: Sequence[tuple[bytes, int]], version: str) -> dict[tuple[bytes, int], float]:
        """Softness measured by the keeper check, by ``(digest, scale)``."""
        got = self._lookup("detail", ("digest", "scale"), "softness", keys, version)
        return {(bytes(d), int(sc)): float(v[0]) for (d, sc), v in got.items()}

    def put_detail(self, rows: Sequence[DetailRow]) -> None:
        if rows:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO detail VALUES (?,?,?,?)", rows)

    def get_lineage(self, pairs: Sequence[tuple[bytes, bytes]], version: str
                    ) -> dict[tuple[bytes, bytes], tuple[float, int]]:
        """The keeper's lineage verdicts, by (member, rival) digest pair: ``(made_from, kind)``,
        made_from < 0 where nothing was found."""
        got = self._lookup("lineage", ("a", "b"), "made_from, kind", pairs, version)
        return {(bytes(x), bytes(y)): (float(v[0]), int(v[1]))
                for (x, y), v in got.items()}

    def put_lineage(self, rows: Sequence[LineageRow]) -> None:
        if rows:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO lineage VALUES (?,?,?,?,?)", rows)

    def get_local(self, digests: Sequence[bytes], version: str) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        keys = sorted(set(digests))
        for s in range(0, len(keys), 900):
            chunk = keys[s : s + 900]
            q = f"SELECT digest, data FROM local WHERE version=? AND digest IN ({','.join('?' * len(chunk))})"
            for d, data in self.db.execute(q, [version, *chunk]):
                out[bytes(d)] = data
        return out

    def put_local(self, rows: Sequence[LocalRow]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO local VALUES (?,?,?)", rows)
