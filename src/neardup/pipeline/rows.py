"""The run's distinct contents as rows: their search columns in memory, everything else read
from the store a batch of rows at a time."""

from __future__ import annotations

import numpy as np

from ..errors import CacheError
from ..features.extract import FEATURE_VERSION, SEARCH_CODES, is_low_info
from ..features.quality import COLOURFUL, QUALITY_FIELDS
from ..records import SearchColumns
from ..store import CropRow, FeatureCache

__all__ = ["load_search_columns", "RowAccess", "CropMemo", "member"]

_SEARCH_FIELDS = ("p64", "c64", "canon", "alt_mask", "energy", "content_side", "quality", "windows", "width", "height")


def load_search_columns(fc: FeatureCache) -> SearchColumns:
    """The search codes and flags of every distinct content of this run, row i the i-th digest."""
    digests, counts = fc.run_contents()
    n = len(digests)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("p64", "c64", "ar", "ap", "ac", "low", "col", "win", "slot", "asp")}
    done = 0
    colourfulness = QUALITY_FIELDS.index("colourfulness")
    for c in fc.iter_run_features(_SEARCH_FIELDS):
        got = c["digest"]
        k = len(got)
        if got.shape[1] != digests.shape[1] or not np.array_equal(got, digests[done : done + k]):
            raise CacheError("features vanished from the cache during the run; run the scan again")
        p64, c64, canon, alt_mask = c["p64"], c["c64"], c["canon"].astype(np.int64), c["alt_mask"].astype(np.uint8)
        local = np.arange(k)
        parts["p64"].append(p64[local, canon])
        parts["c64"].append(c64[local, canon])
        alt_row, alt_variant = np.nonzero((alt_mask[:, None] >> np.arange(8, dtype=np.uint8)) & 1)
        parts["ar"].append(alt_row + done)
        parts["ap"].append(p64[alt_row, alt_variant])
        parts["ac"].append(c64[alt_row, alt_variant])
        parts["low"].append(np.asarray(is_low_info(c["energy"], c["content_side"]), dtype=bool))
        parts["col"].append(c["quality"][:, colourfulness] > COLOURFUL)
        aspect = c["width"].astype(np.float64) / np.maximum(c["height"].astype(np.float64), 1.0)
        parts["asp"].append(aspect.astype(np.float32))
        # crop windows and tilted frames, made by the extractor; the slot code after them
        parts["win"].append(c["windows"][:, :-1])
        parts["slot"].append(c["windows"][:, -1])
        done += k
    if done != n:
        raise CacheError("features vanished from the cache during the run; run the scan again")

    def cat(key: str, dtype: type) -> np.ndarray:
        return np.concatenate(parts.pop(key)).astype(dtype, copy=False) if n else np.zeros(0, dtype)

    windows = cat("win", np.uint64) if n else np.zeros((0, SEARCH_CODES - 1), np.uint64)
    return SearchColumns(digests, counts, cat("p64", np.uint64), cat("c64", np.uint64), cat("ar", np.int64),
                         cat("ap", np.uint64), cat("ac", np.uint64), cat("low", bool), cat("col", bool),
                         windows=windows, aspect=cat("asp", np.float32), slot=cat("slot", np.uint64))


class CropMemo:
    """Crop-test correlations in the store, by digest pair: the dear part of verification is
    paid once per pair of contents, not once per run (verify.rules.CropCache)."""

    VERSION = f"{FEATURE_VERSION}:crop-3"

    def __init__(self, fc: FeatureCache, cols: SearchColumns) -> None:
        self.fc, self.cols = fc, cols

    def digest_pairs(self, a: np.ndarray, b: np.ndarray) -> list[tuple[bytes, bytes]]:
        return [(self.cols.digest(x), self.cols.digest(y)) for x, y in zip(a.tolist(), b.tolist())]

    def get(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pairs = self.digest_pairs(a, b)
        known = self.fc.get_crops(pairs, self.VERSION)
        return np.array([known.get(p, np.nan) for p in pairs], dtype=np.float32)

    def put(self, a: np.ndarray, b: np.ndarray, ncc: np.ndarray) -> None:
        self.fc.put_crops([CropRow(x, y, self.VERSION, float(v))
                           for (x, y), v in zip(self.digest_pairs(a, b), ncc.tolist())])


class RowAccess:
    """What the verification tests read about rows, bound to this run's store and columns."""

    def __init__(self, fc: FeatureCache, cols: SearchColumns) -> None:
        self.fc, self.cols = fc, cols
        self.flags = {"low_info": cols.low_info, "colourful": cols.colourful, "aspect": cols.aspect}
        self.crops = CropMemo(fc, cols)

    def fetch(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The 256-bit hashes, colour grids and 64-bit codes of sorted, distinct ``rows``."""
        return self.fc.fetch([self.cols.digest(int(r)) for r in rows], ("d256", "colour", "p64"))

    def load_sigs(self, rows: np.ndarray) -> np.ndarray:
        """The layout signatures of ``rows`` (any order, repeats allowed)."""
        return self.fc.load_signatures([self.cols.digest(int(r)) for r in rows])


def member(digests: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Which rows of sorted ``digests`` (n, 16) are among sorted ``known`` (k, 16)."""
    if not len(known) or not len(digests):
        return np.zeros(len(digests), dtype=bool)
    a = np.ascontiguousarray(digests).view(f"V{digests.shape[1]}").ravel()
    b = np.ascontiguousarray(known).view(f"V{known.shape[1]}").ravel()
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return b[pos] == a
