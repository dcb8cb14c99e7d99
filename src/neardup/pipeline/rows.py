"""The run's distinct contents as rows: their search columns in memory (the window codes in a
file mapping past :data:`~neardup.spill.SPILL_BYTES`), everything else read from the store a
batch of rows at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CacheError
from ..features.extract import FEATURE_VERSION, SEARCH_CODES, is_low_info
from ..features.quality import COLOURFUL, QUALITY_FIELDS
from ..records import SearchColumns
from ..spill import release_pages, spilled_zeros
from ..store import CropRow, FeatureCache
from .snapshot import RunSnapshot

__all__ = ["load_search_columns", "RowAccess", "CropMemo", "member"]

_SEARCH_FIELDS = ("p64", "c64", "canon", "alt_mask", "energy", "content_side", "quality", "windows", "width", "height")


def load_search_columns(fc: FeatureCache, snapshot: RunSnapshot | None = None) -> SearchColumns:
    """The search codes and flags of every distinct content of this run, row i the i-th digest:
    from ``snapshot`` where it holds the row (memory-mapped), else from the store.  Each column
    is allocated once and filled a chunk at a time (the window codes are 744 bytes a row: a
    second copy at 1M rows was the load stage's peak)."""
    digests, counts = fc.run_contents()
    n = len(digests)
    seg, local = snapshot.locate(digests) if snapshot is not None else (np.full(n, -1), np.full(n, -1))
    saved_in = snapshot if snapshot is not None and (seg >= 0).any() else None  # holds some rows
    missing = np.flatnonzero(seg < 0)
    width = (saved_in.window_width() if saved_in is not None else 0) or SEARCH_CODES - 1
    alts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    whole = saved_in.whole(n) if saved_in is not None and not len(missing) else None
    if whole is not None:  # an unchanged rerun: the saved segment holds every row, in order
        p64, c64, slot = (np.array(whole[k], np.uint64) for k in ("p64", "c64", "slot"))
        low, colourful = np.array(whole["low_info"], bool), np.array(whole["colourful"], bool)
        aspect = np.array(whole["aspect"], np.float32)
        windows = whole["windows"]  # read-only and mapped: nothing copied
        alts.append((np.asarray(whole["alt_rows"], np.int64), np.array(whole["alt_p64"]), np.array(whole["alt_c64"])))
    else:
        p64, c64, slot = np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint64)
        low, colourful, aspect = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, np.float32)
        # the largest column by far: in a file past SPILL_BYTES, its pages dropped after each pass
        windows = spilled_zeros((n, width), np.uint64, folder=None if fc.path == ":memory:" else Path(fc.path).parent)
    if saved_in is not None and whole is None:
        saved = saved_in.gather(seg, local, windows=windows)
        rows = saved["rows"]
        p64[rows], c64[rows], slot[rows] = saved["p64"], saved["c64"], saved["slot"]
        low[rows], colourful[rows], aspect[rows] = saved["low_info"], saved["colourful"], saved["aspect"]
        alts.append((saved["alt_rows"], saved["alt_p64"], saved["alt_c64"]))
        del saved
    done = 0
    colourfulness = QUALITY_FIELDS.index("colourfulness")
    only = digests[missing] if len(missing) < n else None
    for c in fc.iter_run_features(_SEARCH_FIELDS, only=only) if len(missing) else ():
        got = c["digest"]
        k = len(got)
        want = missing[done : done + k]
        if got.shape[1] != digests.shape[1] or not np.array_equal(got, digests[want]):
            raise CacheError("features vanished from the cache during the run; run the scan again")
        codes, centres = c["p64"], c["c64"]
        canon, alt_mask = c["canon"].astype(np.int64), c["alt_mask"].astype(np.uint8)
        at = np.arange(k)
        p64[want], c64[want] = codes[at, canon], centres[at, canon]
        alt_row, alt_variant = np.nonzero((alt_mask[:, None] >> np.arange(8, dtype=np.uint8)) & 1)
        alts.append((want[alt_row], codes[alt_row, alt_variant], centres[alt_row, alt_variant]))
        low[want] = np.asarray(is_low_info(c["energy"], c["content_side"]), dtype=bool)
        colourful[want] = c["quality"][:, colourfulness] > COLOURFUL
        aspect[want] = (c["width"].astype(np.float64) / np.maximum(c["height"].astype(np.float64), 1.0))
        # crop windows and tilted frames, made by the extractor; the slot code after them
        windows[want] = c["windows"][:, :-1]
        release_pages(windows)
        slot[want] = c["windows"][:, -1]
        done += k
    if done != len(missing):
        raise CacheError("features vanished from the cache during the run; run the scan again")
    alt_rows = np.concatenate([a for a, _, _ in alts]) if alts else np.zeros(0, np.int64)
    order = np.argsort(alt_rows, kind="stable")  # ascending rows, each row's alternatives in order
    alt_p64 = np.concatenate([p for _, p, _ in alts])[order] if alts else np.zeros(0, np.uint64)
    alt_c64 = np.concatenate([q for _, _, q in alts])[order] if alts else np.zeros(0, np.uint64)
    return SearchColumns(digests, counts, p64, c64, alt_rows[order].astype(np.int64), alt_p64.astype(np.uint64),
                         alt_c64.astype(np.uint64), low, colourful, windows=windows, aspect=aspect, slot=slot)


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
