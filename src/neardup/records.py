"""Typed hand-offs between stages that more than one stage reads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["SearchColumns", "Stage"]


class Stage(IntEnum):
    """Which test accepted a pair: stored as uint8 in ``Verified.stage`` and the cache, written
    as its ``label`` in results.json (``Pair.stage``)."""

    EXACT = 0  # identical bytes (in a verdict column, 0 before acceptance means "not accepted")
    HASH = 1  # 256-bit hash and colour
    CROP = 2  # layout correlation as a crop
    EMBEDDING = 3  # CNN embedding with the hashes
    LOCAL = 4  # local features aligned (ORB + RANSAC)
    SIMILAR = 5  # another shot of the same scene (thorough --similar)

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class SearchColumns:
    """What stays in memory for each distinct content: its search codes and two flags.

    About 40 bytes a row plus the orientation alternatives; everything else (the 256-bit
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

    def digest(self, row: int) -> bytes:
        return self.digests[row].tobytes()
