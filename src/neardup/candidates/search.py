"""The exact candidate search over a run's search codes: every pair within the radius, by
multi-index hashing, streamed in blocks of query rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..records import SearchColumns
from .mih import MultiIndex, PairBatch

__all__ = ["candidate_batches", "SEARCH_BLOCK"]

#: query rows searched at a time (the progress bar's step; the index splits them further)
SEARCH_BLOCK = 16_384


def candidate_batches(cols: SearchColumns, fresh: np.ndarray, *, radius: int, threads: int = 1,
                      searched: Callable[[int], None] | None = None) -> Iterator[PairBatch]:
    """Every pair within ``radius`` that involves a ``fresh`` row, exactly (pairs of two rows
    that are not fresh were found by an earlier run and are not searched again).

    A row is indexed by its canonical full-frame code and the other orientations it might
    take; it queries with its full frame, its centre window (in every alternative orientation too)
    and its crop windows.  The fresh rows query everything; the others query, with their
    centre windows, an index of the fresh rows only (a window finds a frame, not the reverse).
    A pair may come more than once (from both ends, or by several codes).  ``searched(k)`` is
    told as each block of ``k`` query rows is done.
    """
    n = len(cols.p64)
    step = SEARCH_BLOCK
    has_windows = cols.windows.ndim == 2 and cols.windows.shape[0] == n and cols.windows.shape[1] > 0

    def queries(index: MultiIndex, rows: np.ndarray, *, full_frame: bool) -> Iterator[PairBatch]:
        alt_of = np.isin(cols.alt_rows, rows)
        for s in range(0, len(rows), step):
            blk = rows[s : s + step]
            sel = alt_of & (cols.alt_rows >= blk[0]) & (cols.alt_rows <= blk[-1])
            # crop windows find crops taken anywhere, in either aspect; not for low-information
            # rows (their windows are noise, and they never take the crop test).  Each window
            # is in its own orientation, so the image's alternatives need no windows of their own
            side = blk[~cols.low_info[blk]] if has_windows else blk[:0]
            per = cols.windows.shape[1] if has_windows else 0
            qc = np.concatenate([*([cols.p64[blk]] if full_frame else []), cols.c64[blk], cols.alt_c64[sel],
                                 cols.windows[side].ravel()])
            qi = np.concatenate([*([blk] if full_frame else []), blk, cols.alt_rows[sel], np.repeat(side, per)])
            yield from index.query(qc, qi, threads=threads)
            if searched is not None:
                searched(len(blk))

    new_rows = np.flatnonzero(fresh)
    if n < 2 or not len(new_rows):
        return
    index = MultiIndex(np.concatenate([cols.p64, cols.alt_p64]),
                       np.concatenate([np.arange(n, dtype=np.int64), cols.alt_rows]), radius=radius)
    yield from queries(index, new_rows, full_frame=True)
    del index
    if len(new_rows) < n:
        alt_new = np.isin(cols.alt_rows, new_rows)
        index = MultiIndex(np.concatenate([cols.p64[new_rows], cols.alt_p64[alt_new]]),
                           np.concatenate([new_rows, cols.alt_rows[alt_new]]), radius=radius)
        yield from queries(index, np.flatnonzero(~fresh), full_frame=False)
