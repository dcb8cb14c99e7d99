"""The exact candidate search over a run's search codes: every pair within the radius, by
multi-index hashing, streamed in blocks of query rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from ..features.content import SLOT_MAX, slot_distance
from ..records import SearchColumns
from ..spill import release_pages, return_freed_memory, take_rows
from .mih import MultiIndex, PairBatch

__all__ = ["candidate_batches", "SEARCH_BLOCK", "WINDOW_BLOCK", "keep_alike_slots", "SavedIndexes",
           "window_blocks"]

logger = logging.getLogger(__name__)

#: query rows searched at a time (the progress bar's step; the index splits them further)
SEARCH_BLOCK = 16_384


#: crop-window and tilted-frame codes indexed at a time (about 200 MB of index with its tables):
#: the windows of a block of rows are indexed and every full frame queries them, which finds
#: the same pairs as every window querying the frames, with a query per row and block instead
#: of one per window (benchmarks/window_queries.py --swap: 3x faster at 10k rows, 4.6x at 100k).
#: Every frame's probes are paid once per block: fewer, larger blocks cost less time and more
#: memory (docs/benchmarks.md, "The million's spike": 4M codes against 2M, a sixth less time
#: in the window pass at 1M for ~70 MB more)
WINDOW_BLOCK = 4_000_000


class SavedIndexes(Protocol):
    """Full-frame, crop-window and centre indexes an earlier run saved (pipeline/snapshot.py),
    and where new window indexes go."""

    def covered(self, n: int) -> np.ndarray: ...

    def windowed(self, n: int) -> np.ndarray: ...

    def centre_pairs(self, codes: np.ndarray, ids: np.ndarray, *, threads: int,
                     only: np.ndarray) -> Iterator[PairBatch]: ...

    def frame_pairs(self, codes: np.ndarray, ids: np.ndarray, *, threads: int,
                    only: np.ndarray) -> Iterator[PairBatch]: ...

    def window_pairs(self, codes: np.ndarray, ids: np.ndarray, *, threads: int,
                     only: np.ndarray) -> Iterator[PairBatch]: ...

    def keep_block(self, index: MultiIndex, rows: np.ndarray) -> None: ...


def candidate_batches(cols: SearchColumns, fresh: np.ndarray, *, radius: int, threads: int = 1,
                      searched: Callable[[int], None] | None = None,
                      saved: SavedIndexes | None = None) -> Iterator[PairBatch]:
    """Every pair within ``radius`` that involves a ``fresh`` row, exactly (pairs of two rows
    that are not fresh were found by an earlier run and are not searched again).

    A row is indexed by its canonical full-frame code and the other orientations it might
    take; it queries with its full frame and its centre window (in every alternative
    orientation too).  Its crop windows and tilted frames (not a low-information row's: they
    are noise, and such rows never take the crop test) are indexed a block of rows at a time
    and queried by every row's full-frame codes.  The rows that are not fresh query, with their
    centre windows, an index of the fresh rows only, and their crop windows are indexed and
    queried by the fresh rows' frames (a window finds a frame, not the reverse).  A pair may come more than once (from both ends, or by several codes).
    ``searched(k)`` is told as each block of ``k`` query rows is done.

    Two *framed* rows (a picture in a flat surround: features/content.py) are a candidate only
    when their slots show alike pictures: screenshots of one app are all within the radius of
    each other by their frames, and are handed on only with their copies, not with every other.

    ``saved``: the old rows' window and centre indexes an earlier run kept are queried by the
    fresh frames instead of the old rows querying the fresh ones (the same pairs), and every
    window index built here is handed to it to keep.
    """
    slots = len(cols.slot) == len(cols.p64)
    for batch in _all_batches(cols, fresh, radius=radius, threads=threads, searched=searched, saved=saved):
        if slots and len(batch):
            batch = keep_alike_slots(batch, cols.slot[batch.a], cols.slot[batch.b])
        if len(batch):
            yield batch


def window_blocks(windows: np.ndarray, rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The crop-window and tilted-frame codes of ``rows`` (``windows``: (n, per)), about
    WINDOW_BLOCK codes at a time: ``(codes, the row of each, the block's rows)``."""
    per = windows.shape[1] if windows.ndim == 2 else 0
    step = max(1, WINDOW_BLOCK // max(per, 1))
    for s in range(0, len(rows), step):
        blk = rows[s : s + step]
        codes = np.asarray(windows[blk]).ravel()
        release_pages(windows)  # a file mapping's pages go once the block is copied out
        yield codes, np.repeat(blk, per), blk


def keep_alike_slots(batch: PairBatch, slot_a: np.ndarray, slot_b: np.ndarray) -> PairBatch:
    """``batch`` without the pairs of two framed images (non-zero slot codes ``slot_a``,
    ``slot_b``, one per pair) whose slots show different pictures."""
    framed = np.flatnonzero((slot_a != 0) & (slot_b != 0))  # few, outside screenshots
    apart = framed[slot_distance(slot_a[framed], slot_b[framed]) > SLOT_MAX]
    if not len(apart):
        return batch
    keep = np.ones(len(batch), bool)
    keep[apart] = False
    return PairBatch(batch.a[keep], batch.b[keep], batch.distance[keep])


def _all_batches(cols: SearchColumns, fresh: np.ndarray, *, radius: int, threads: int,
                 searched: Callable[[int], None] | None, saved: SavedIndexes | None) -> Iterator[PairBatch]:
    """:func:`candidate_batches` before the framed rows' slots are compared."""
    new_rows = np.flatnonzero(fresh)
    if len(cols.p64) < 2 or not len(new_rows):
        return
    search = _Search(cols, radius=radius, threads=threads, searched=searched, saved=saved)
    yield from search.fresh(fresh, new_rows)
    if len(new_rows) < len(cols.p64):
        yield from search.old(fresh, new_rows)


class _Search:
    """The passes of :func:`candidate_batches` over one run's columns."""

    def __init__(self, cols: SearchColumns, *, radius: int, threads: int, searched: Callable[[int], None] | None,
                 saved: SavedIndexes | None) -> None:
        self.cols, self.radius, self.threads, self.searched, self.saved = cols, radius, threads, searched, saved
        n = len(cols.p64)
        self.has_windows = cols.windows.ndim == 2 and cols.windows.shape[0] == n and cols.windows.shape[1] > 0
        self.per = cols.windows.shape[1] if self.has_windows else 0

    def told(self, rows: int) -> None:
        if self.searched is not None:
            self.searched(rows)

    def queries(self, against: Callable[[np.ndarray, np.ndarray], Iterator[PairBatch]], rows: np.ndarray, *,
                full_frame: bool) -> Iterator[PairBatch]:
        """``rows``' centre windows (and full frames) in every orientation they may take, asked
        ``against`` an index (codes, ids)."""
        cols = self.cols
        alt_of = np.isin(cols.alt_rows, rows)
        for s in range(0, len(rows), SEARCH_BLOCK):
            blk = rows[s : s + SEARCH_BLOCK]
            sel = alt_of & (cols.alt_rows >= blk[0]) & (cols.alt_rows <= blk[-1])
            qc = np.concatenate([*([cols.p64[blk]] if full_frame else []), cols.c64[blk], cols.alt_c64[sel]])
            qi = np.concatenate([*([blk] if full_frame else []), blk, cols.alt_rows[sel]])
            yield from against(qc, qi)

    def window_pass(self, rows: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> Iterator[PairBatch]:
        """The windows of ``rows``, indexed a block at a time, queried by ``codes``."""
        cols = self.cols
        with_windows = rows[~cols.low_info[rows]] if self.has_windows else rows[:0]
        done = 0
        for block_codes, block_ids, blk in window_blocks(cols.windows, with_windows):
            # laid out for the queries it gets here (a collection's frames: a hundredth of its windows)
            windows = MultiIndex(block_codes, block_ids, radius=self.radius, queries=len(codes))
            yield from windows.query(codes, ids, threads=self.threads)
            if self.saved is not None:
                self.saved.keep_block(windows, blk)
            del windows
            return_freed_memory()  # the block's index was built and queried on several threads
            self.told(len(blk))
            done += len(blk)
            logger.debug("windows of %d of %d rows searched", done, len(with_windows))
        if done < len(rows):
            self.told(len(rows) - done)

    def fresh(self, fresh: np.ndarray, new_rows: np.ndarray) -> Iterator[PairBatch]:
        """The fresh rows' frames and centres against every frame, and their windows likewise
        (the frames of old rows an earlier run saved from its index, the rest indexed here)."""
        cols, n = self.cols, len(self.cols.p64)
        saved_frames = self.saved.covered(n) & ~fresh if self.saved is not None else np.zeros(n, bool)
        here = np.flatnonzero(~saved_frames)
        alt_here = ~saved_frames[cols.alt_rows]
        index = MultiIndex(np.concatenate([cols.p64[here], cols.alt_p64[alt_here]]),
                           np.concatenate([here, cols.alt_rows[alt_here]]), radius=self.radius)

        def against_frames(codes: np.ndarray, ids: np.ndarray) -> Iterator[PairBatch]:
            yield from index.query(codes, ids, threads=self.threads)
            if self.saved is not None and saved_frames.any():
                yield from self.saved.frame_pairs(codes, ids, threads=self.threads, only=saved_frames)

        yield from self.queries(against_frames, new_rows, full_frame=True)
        logger.debug("frames and centres of %d rows searched against %d frame codes", len(new_rows), index.size)
        # a few fresh rows' windows query the frames (fewer queries than every frame querying
        # their index; the same pairs either way)
        with_windows = new_rows[~cols.low_info[new_rows]] if self.has_windows else new_rows[:0]
        if len(with_windows) * self.per > n + len(cols.alt_rows):
            del index
            frame_codes = np.concatenate([cols.p64, cols.alt_p64])
            frame_ids = np.concatenate([np.arange(n, dtype=np.int64), cols.alt_rows])
            yield from self.window_pass(new_rows, frame_codes, frame_ids)
            return
        codes, ids = take_rows(cols.windows, with_windows).ravel(), np.repeat(with_windows, self.per)
        yield from against_frames(codes, ids)
        self.told(len(new_rows))
        if self.saved is not None and len(with_windows):
            # kept for the next run, whose fresh frames query it: about as many as these rows
            # when it too adds a share, not as many as the codes it holds (a layout for that
            # many took longer to build than the few queries take: docs/benchmarks.md)
            self.saved.keep_block(MultiIndex(codes, ids, radius=self.radius, queries=len(with_windows)), with_windows)

    def old(self, fresh: np.ndarray, new_rows: np.ndarray) -> Iterator[PairBatch]:
        """The other rows' centres and windows against the fresh frames: from the indexes an
        earlier run saved where it did, else indexed (the few fresh frames query them: a rerun
        with 1% new does not query 93 codes a row)."""
        cols, n, saved = self.cols, len(self.cols.p64), self.saved
        alt_new = np.isin(cols.alt_rows, new_rows)
        fresh_codes = np.concatenate([cols.p64[new_rows], cols.alt_p64[alt_new]])
        fresh_ids = np.concatenate([new_rows, cols.alt_rows[alt_new]])
        old_rows = np.flatnonzero(~fresh)
        none = np.zeros(n, bool)
        centred = saved.covered(n) & ~fresh if saved is not None else none
        windowed = saved.windowed(n) & ~fresh if saved is not None else none
        if saved is not None:
            yield from saved.centre_pairs(fresh_codes, fresh_ids, threads=self.threads, only=centred)
        if not centred[old_rows].all():
            index = MultiIndex(fresh_codes, fresh_ids, radius=self.radius)
            yield from self.queries(lambda codes, ids: index.query(codes, ids, threads=self.threads),
                                    old_rows[~centred[old_rows]], full_frame=False)
        if saved is not None:
            yield from saved.window_pairs(fresh_codes, fresh_ids, threads=self.threads, only=windowed)
            self.told(int(windowed.sum()))
        yield from self.window_pass(old_rows[~windowed[old_rows]], fresh_codes, fresh_ids)
