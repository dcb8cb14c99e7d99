"""Typed hand-offs between stages that more than one stage reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

__all__ = ["SearchColumns", "Stage", "Verified", "PairEvidence", "EXTRA_FIELDS", "STAGE_RANK", "no_extra"]

#: the thorough checks' evidence columns of :attr:`PairEvidence.extra`, in order: the global
#: embeddings' cosine, the local check's RANSAC inliers and worst aligned tile correlation, and
#: for a view that holds the other whole (verify/local.py ``Containment``) the share of its frame
#: the other covers, the seam along that outline and which one holds it (+1: row a, -1: row b),
#: and the regional cosine that made a ``contains`` candidate (embed/regions.py)
EXTRA_FIELDS = ("cosine", "inliers", "aligned_ncc", "footprint", "seam", "container", "region_cosine")


class Stage(IntEnum):
    """Which test accepted a pair: stored as uint8 in ``Verified.stage`` and the cache, written
    as its ``label`` in results.json (``Pair.stage``)."""

    EXACT = 0  # identical bytes (in a verdict column, 0 before acceptance means "not accepted")
    HASH = 1  # 256-bit hash and colour
    CROP = 2  # layout correlation as a crop
    EMBEDDING = 3  # CNN embedding with the hashes
    LOCAL = 4  # local features aligned (ORB + RANSAC)
    SIMILAR = 5  # another shot of the same scene (thorough --similar)
    CONTAINS = 6  # one shows the other whole inside a larger frame (an inset, a screenshot, a slide)

    @property
    def label(self) -> str:
        return self.name.lower()


#: which evidence a pair found several times keeps, best first (by Stage value): a finding that
#: one image holds the other is more specific than local features alone, and both outrank
#: "another shot"
STAGE_RANK = np.array([0, 1, 2, 3, 5, 6, 4], np.int64)


@dataclass(frozen=True, slots=True)
class SearchColumns:
    """What stays in memory for each distinct content: its search codes and two flags.

    About 40 bytes a row, plus the orientation alternatives and 8 bytes for each crop-window
    and tilted-frame code (93: 744 bytes) and the slot code; everything else (the 256-bit
    hashes, colour, quality, paths) stays in SQLite and is read a batch at a time.
    """

    digests: np.ndarray  # (n, 16) uint8, sorted: row i is the i-th digest
    counts: np.ndarray  # int32: paths in this run with that content
    p64: np.ndarray  # uint64: full-frame code in canonical orientation
    c64: np.ndarray  # uint64: centre-window code in canonical orientation
    alt_rows: np.ndarray  # int64, ascending: rows with an alternative orientation ...
    alt_p64: np.ndarray  # ... and its codes
    alt_c64: np.ndarray
    low_info: np.ndarray  # bool
    colourful: np.ndarray  # bool
    # (n, W) crop-window and tilted-frame codes, each in its own orientation (features/windows.py)
    windows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint64))
    aspect: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # width / height
    # (n,) the slot code of a framed image (features/content.py), 0 for the others
    slot: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))

    def digest(self, row: int) -> bytes:
        return self.digests[row].tobytes()

    def take(self, rows: np.ndarray) -> SearchColumns:
        """The columns of ``rows`` (distinct; ascending keeps the digests sorted) as new arrays,
        the alternatives renumbered and kept in row order (``counts`` as they were)."""
        rows = np.asarray(rows, np.int64)
        n = len(self.digests)
        pos = np.full(n + 1, -1, np.int64)
        pos[rows] = np.arange(len(rows))
        alt_rows = np.asarray(self.alt_rows)
        keep = np.flatnonzero(pos[alt_rows] >= 0) if len(alt_rows) else np.zeros(0, np.int64)
        keep = keep[np.argsort(pos[alt_rows[keep]], kind="stable")]
        windows = np.asarray(self.windows)

        def per_row(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a)
            return a[rows] if len(a) == n else a  # a column the rows do not have stays as it is

        return SearchColumns(per_row(self.digests), per_row(self.counts), per_row(self.p64), per_row(self.c64),
                             pos[alt_rows[keep]], np.asarray(self.alt_p64)[keep], np.asarray(self.alt_c64)[keep],
                             per_row(self.low_info), per_row(self.colourful),
                             windows=windows[rows] if windows.ndim == 2 and len(windows) == n else windows,
                             aspect=per_row(self.aspect), slot=per_row(self.slot))


@dataclass(frozen=True, slots=True)
class Verified:
    """Columns of accepted pairs of rows with the evidence of the test that accepted them."""

    a: np.ndarray  # int64 row of the lower content
    b: np.ndarray  # int64 row of the higher content
    stage: np.ndarray  # uint8 Stage values
    d256: np.ndarray  # int16
    p64: np.ndarray  # int16 (-1 when not measured)
    colour: np.ndarray  # float32
    ncc: np.ndarray  # float32 (nan when not computed)

    def __len__(self) -> int:
        return int(self.a.shape[0])

    @classmethod
    def empty(cls) -> Verified:
        z = np.zeros(0, np.int64)
        return cls(z, z, z.astype(np.uint8), z.astype(np.int16), z.astype(np.int16), z.astype(np.float32),
                   z.astype(np.float32))

    @classmethod
    def concat(cls, parts: Sequence[Verified]) -> Verified:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(v, f) for v in parts]) for f in cls.__dataclass_fields__))


@dataclass(frozen=True, slots=True)
class PairEvidence:
    """Every verified pair of a run, one row each, with what the thorough checks measured
    (``extra``: (k, len(EXTRA_FIELDS)) float32 of :data:`EXTRA_FIELDS`, nan where not measured): the hand-off
    from verification to grouping."""

    pairs: Verified
    extra: np.ndarray

    def __len__(self) -> int:
        return len(self.pairs)

    @classmethod
    def of(cls, parts: Sequence[tuple[Verified, np.ndarray | None]]) -> PairEvidence:
        """One table of ``(verified, extra or None)`` parts."""
        kept = [(v, x) for v, x in parts if len(v)]
        extra = [no_extra(len(v)) if x is None else x for v, x in kept]
        return cls(Verified.concat([v for v, _ in kept]), np.concatenate(extra) if extra else no_extra(0))

    def select(self, rows: np.ndarray) -> PairEvidence:
        """The pairs at ``rows`` (indices or a mask), in that order."""
        p = self.pairs
        return PairEvidence(Verified(*(getattr(p, f)[rows] for f in Verified.__dataclass_fields__)), self.extra[rows])

    def best_per_pair(self, n: int) -> PairEvidence:
        """One row per pair of contents: a pair found several times (from both ends, by the
        centre window) keeps its best evidence, whatever order threads and batches found it in
        (the best stage by STAGE_RANK, then 256-bit distance, then 64-bit distance, then highest correlation)."""
        p = self.pairs
        key = p.a * max(n, 1) + p.b
        order = np.lexsort((np.nan_to_num(-p.ncc, nan=1.0), p.p64, p.d256, STAGE_RANK[p.stage], key))
        _, first = np.unique(key[order], return_index=True)
        return self.select(order[first])


def no_extra(k: int) -> np.ndarray:
    """(k, len(EXTRA_FIELDS)) float32 of nan: pairs the thorough checks did not measure."""
    return np.full((k, len(EXTRA_FIELDS)), np.nan, np.float32)
