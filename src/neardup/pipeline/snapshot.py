"""A run's search columns and crop-window indexes, saved beside the cache for the next run over
the same roots (issue 19: reruns).

An incremental run spent most of its time reading every row's codes back from the store and
indexing the old rows' 93 crop-window and tilted-frame codes anew to meet a few fresh frames.
Here both are kept as segments of ``.npy`` files, memory-mapped on the next run:

- each segment holds the search columns of its rows (by digest: columns are a pure function of
  the features, so a segment stays valid whatever became of the run that wrote it), the window
  multi-indexes the scan built for those rows (their ids the writing run's rows, which the
  segment lists), and multi-indexes of the rows' full-frame and centre codes;
- a run loads the columns of the rows a segment holds from it, and only the rest from the
  store; its fresh codes query the saved frame, window and centre indexes of the old rows (a
  probe per code, where indexing the old rows anew would cost a query per old code), and the blocks
  it builds (the fresh rows', and any old row no segment covers) become a new segment.  Large
  blocks are written to disk as the search hands them over, so none is held until the run ends.

Segments accumulate one per run that finds something new; past :data:`MAX_SEGMENTS` the
snapshot is dropped and the next run writes one segment of everything (its search builds every
block anyway).  A snapshot of another features version, or a damaged one, is ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..candidates.mih import MultiIndex, PairBatch
from ..features.extract import FEATURE_VERSION
from ..records import SearchColumns
from ..spill import CHUNK_ROWS, release_pages, take_rows

__all__ = ["RunSnapshot", "SNAPSHOT_FORMAT", "MAX_SEGMENTS", "KEEP_SNAPSHOTS"]

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "neardup-run-snapshot/4"
#: segments a snapshot may gather (one per run with new contents) before it is written anew
MAX_SEGMENTS = 12
#: window codes of a block the search hands over that is kept in memory until the run's end (an
#: incremental run's fresh rows); larger blocks are written to disk at once
KEEP_IN_MEMORY = 262_144
#: snapshots kept per cache (one per set of roots and settings), the least recently used dropped
KEEP_SNAPSHOTS = 4
_COLUMNS = ("run_rows", "digests", "p64", "c64", "alt_rows", "alt_p64", "alt_c64", "low_info", "colourful", "aspect", "slot",
            "windows", "windowed")


class _Segment:
    """One saved segment, memory-mapped: its rows' columns (sorted by digest), their window
    indexes (ids: the writing run's rows, ``run_rows``) and their frame and centre indexes (ids:
    the segment's rows)."""

    def __init__(self, folder: Path) -> None:
        meta = json.loads((folder / "segment.json").read_text())
        self.folder = folder

        def load(name: str) -> np.ndarray:
            return np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r"))

        self.columns = {k: load(k) for k in _COLUMNS}
        self.blocks = [folder / f"windows-{k:03d}" for k in range(int(meta["blocks"]))]
        self.centres = folder / "centres"
        self.frames = folder / "frames"

    def __len__(self) -> int:
        return int(len(self.columns["digests"]))


class RunSnapshot:
    """The snapshot of the runs under one key, in ``folder`` (made on first save)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.segments: list[_Segment] = []
        # (a block index, in memory or staged on disk, and its rows) to save
        self._pending: list[tuple[MultiIndex | Path, np.ndarray]] = []
        self._staging: Path | None = None
        try:
            meta = json.loads((folder / "snapshot.json").read_text())
            if meta.get("format") == SNAPSHOT_FORMAT and meta.get("features") == FEATURE_VERSION:
                self.segments = [_Segment(folder / name) for name in meta["segments"]]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as e:  # damaged: the run builds what it needs
            logger.warning("ignoring the run snapshot in %s: %s", folder, e)
            self.segments = []
        self._where: tuple[np.ndarray, np.ndarray] | None = None
        self._windowed = np.zeros(0, bool)

    @classmethod
    def beside(cls, cache_file: str, key: str) -> RunSnapshot | None:
        """The snapshot for run ``key`` beside the store file ``cache_file`` (None in memory)."""
        if cache_file == ":memory:":
            return None
        runs = Path(cache_file).parent / "runs"
        folder = runs / key[:32]
        if folder.is_dir():
            os.utime(folder)  # recently used
        return cls(folder)

    # -- reading --------------------------------------------------------------------------
    def locate(self, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of sorted ``digests`` (n, 16): the segment holding it (-1: none) and its row there."""
        n = len(digests)
        seg = np.full(n, -1, np.int64)
        local = np.full(n, -1, np.int64)
        if not n:
            return seg, local
        want = np.ascontiguousarray(digests).view(f"V{digests.shape[1]}").ravel()
        windowed = np.zeros(n, bool)
        for s, segment in enumerate(self.segments):
            if not len(segment):
                continue
            mine = np.ascontiguousarray(segment.columns["digests"]).view(f"V{digests.shape[1]}").ravel()
            pos = np.minimum(np.searchsorted(mine, want), len(mine) - 1)
            found = mine[pos] == want
            with_windows = found & segment.columns["windowed"][pos]
            # a segment whose window indexes hold the row beats one that has its columns only
            hit = (found & (seg < 0)) | (with_windows & ~windowed)
            seg[hit], local[hit] = s, pos[hit]
            windowed |= with_windows
        self._where = (seg, local)
        self._windowed = windowed
        return seg, local

    def whole(self, n: int) -> dict[str, np.ndarray] | None:
        """The columns of the one segment that holds exactly the ``n`` rows :meth:`locate` last
        found, in their order (an unchanged rerun), else None: the run can use them as they
        are, the window codes still mapped, instead of gathering a copy."""
        if self._where is None or len(self.segments) != 1 or len(self.segments[0]) != n:
            return None
        seg, local = self._where
        if len(seg) != n or not (seg == 0).all() or not np.array_equal(local, np.arange(n)):
            return None
        return self.segments[0].columns

    def window_width(self) -> int:
        """Window and tilt codes a row in this snapshot's segments (0 without segments)."""
        w = self.segments[0].columns["windows"] if self.segments else None
        return int(w.shape[1]) if w is not None and w.ndim == 2 else 0

    def gather(self, seg: np.ndarray, local: np.ndarray, *, windows: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
        """The columns of the rows ``seg >= 0`` (in row order), alternatives with their rows.
        With ``windows`` ((n, W), the run's rows), the window codes are copied into it a chunk
        of rows at a time instead (:func:`~neardup.spill.release_pages` after each: it may be
        a file mapping)."""
        rows = np.flatnonzero(seg >= 0)
        first = self.segments[int(seg[rows[0]])].columns if len(rows) else None
        out: dict[str, np.ndarray] = {}
        names = ("p64", "c64", "low_info", "colourful", "aspect", "slot", *(() if windows is not None else ("windows",)))
        for name in names:
            shape = (len(rows), *first[name].shape[1:]) if first is not None else (0,)
            out[name] = np.empty(shape, first[name].dtype if first is not None else np.uint64)
        alt_rows, alt_p64, alt_c64 = [], [], []
        for s, segment in enumerate(self.segments):
            pick = np.flatnonzero(seg[rows] == s)
            if not len(pick):
                continue
            mine = local[rows[pick]]
            for name in out:
                out[name][pick] = segment.columns[name][mine]
            if windows is not None:
                source = segment.columns["windows"]
                for c in range(0, len(pick), CHUNK_ROWS):
                    windows[rows[pick[c : c + CHUNK_ROWS]]] = source[mine[c : c + CHUNK_ROWS]]
                    release_pages(windows)
                    release_pages(source)  # the segment's file, mapped read-only
            to_row = np.full(len(segment), -1, np.int64)
            to_row[mine] = rows[pick]
            alt = to_row[segment.columns["alt_rows"]]
            keep = alt >= 0
            alt_rows.append(alt[keep])
            alt_p64.append(segment.columns["alt_p64"][keep])
            alt_c64.append(segment.columns["alt_c64"][keep])
        out["rows"] = rows
        out["alt_rows"] = np.concatenate(alt_rows) if alt_rows else np.zeros(0, np.int64)
        out["alt_p64"] = np.concatenate(alt_p64) if alt_p64 else np.zeros(0, np.uint64)
        out["alt_c64"] = np.concatenate(alt_c64) if alt_c64 else np.zeros(0, np.uint64)
        return out

    def covered(self, n: int) -> np.ndarray:
        """(n,) bool: rows of this run (as :meth:`locate` last found them) a segment holds."""
        if self._where is None or len(self._where[0]) != n:
            return np.zeros(n, bool)
        return self._where[0] >= 0

    def windowed(self, n: int) -> np.ndarray:
        """(n,) bool: rows whose crop windows a saved index holds (or that have none to search:
        low-information rows)."""
        if self._where is None or len(self._windowed) != n:
            return np.zeros(n, bool)
        return self._windowed

    def window_pairs(self, codes: np.ndarray, ids: np.ndarray, *, threads: int, only: np.ndarray) -> Iterator[PairBatch]:
        """Pairs of ``codes`` (ids: this run's rows) with the saved crop windows of the rows
        ``only`` marks, as this run's rows: what indexing those rows' windows anew would give."""
        yield from self._saved_pairs(lambda segment: segment.blocks, codes, ids, threads=threads, only=only,
                                     by_run_row=True)

    def centre_pairs(self, codes: np.ndarray, ids: np.ndarray, *, threads: int, only: np.ndarray) -> Iterator[PairBatch]:
        """Pairs of ``codes`` with the saved centre codes (every orientation they may take) of
        the rows ``only`` marks, which a segment holds (:meth:`covered`)."""
        yield from self._saved_pairs(lambda segment: [segment.centres], codes, ids, threads=threads, only=only)

    def frame_pairs(self, codes: np.ndarray, ids: np.ndarray, *, threads: int, only: np.ndarray) -> Iterator[PairBatch]:
        """Pairs of ``codes`` with the saved full-frame codes (every orientation they may take)
        of the rows ``only`` marks, which a segment holds (:meth:`covered`)."""
        yield from self._saved_pairs(lambda segment: [segment.frames], codes, ids, threads=threads, only=only)

    def _saved_pairs(self, indexes: Callable[[_Segment], list[Path]], codes: np.ndarray, ids: np.ndarray, *,
                     threads: int, only: np.ndarray, by_run_row: bool = False) -> Iterator[PairBatch]:
        """``by_run_row``: the indexes' ids are rows of the run that wrote the segment (its
        window blocks, saved as the search built them), not the segment's own rows."""
        if self._where is None:
            return
        seg, local = self._where
        for s, segment in enumerate(self.segments):
            to_row = np.full(len(segment), -1, np.int64)
            mine = np.flatnonzero((seg == s) & only)
            to_row[local[mine]] = mine
            if not len(mine):
                continue
            for folder in indexes(segment):
                for pb in MultiIndex.load(folder).query(codes, ids, threads=threads, by_query=True):
                    held = np.searchsorted(segment.columns["run_rows"], pb.b) if by_run_row else pb.b
                    a, b = pb.a, to_row[held]
                    ok = (b >= 0) & (a != b)
                    if ok.any():
                        a, b = a[ok], b[ok]
                        yield PairBatch(np.minimum(a, b), np.maximum(a, b), pb.distance[ok])

    # -- writing --------------------------------------------------------------------------
    def keep_block(self, index: MultiIndex, rows: np.ndarray) -> None:
        """A window index the search built over ``rows``' windows, for the next segment
        (:meth:`save`): a large one is written to disk now (the search drops it), so that the
        blocks of a whole collection are never held at once."""
        if index.size <= KEEP_IN_MEMORY:
            self._pending.append((index, np.asarray(rows, np.int64)))
            return
        try:
            if self._staging is None:
                self._staging = self.folder / f"staged-{time.time_ns():x}-{os.getpid()}.part"
                self._staging.mkdir(parents=True)
            block = self._staging / f"{len(self._pending):03d}"
            index.save(block)
        except OSError as e:  # a full disk costs the next run's speed, never this run's result
            logger.warning("could not keep a window index in %s: %s", self.folder, e)
            return
        self._pending.append((block, np.asarray(rows, np.int64)))

    def save(self, cols: SearchColumns, *, radius: int) -> None:
        """Write the rows no segment holds, and those whose window indexes were kept, as a new
        segment (no-op when there are none), its indexes for queries within ``radius``; past
        MAX_SEGMENTS the snapshot starts again."""
        pending, self._pending = self._pending, []
        rows = np.union1d(np.flatnonzero(~self.covered(len(cols.digests))),
                          np.concatenate([r for _, r in pending]) if pending else [])
        rows = rows.astype(np.int64)
        try:
            if len(rows):
                self._write(cols, rows, pending, radius)
        except OSError as e:  # a full disk costs the next run's speed, never this run's result
            logger.warning("could not save the run snapshot in %s: %s", self.folder, e)
        finally:
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)
                self._staging = None

    def _write(self, cols: SearchColumns, rows: np.ndarray, pending: list[tuple[MultiIndex | Path, np.ndarray]],
               radius: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        names = [s.folder.name for s in self.segments]
        if len(names) >= MAX_SEGMENTS:
            names = []
        name = f"seg-{time.time_ns():x}-{os.getpid()}"
        part = self.folder / (name + ".part")
        part.mkdir()
        pos = np.full(len(cols.digests) + 1, -1, np.int64)  # this run's rows -> the segment's
        pos[rows] = np.arange(len(rows))
        # the window codes (744 bytes a row) are written a chunk of rows at a time, not copied
        # whole with the other columns: at 1M rows that copy was the candidate stage's peak
        mine = dataclasses.replace(cols, windows=np.zeros((0, 0), np.uint64)).take(rows)
        windowed = mine.low_info.copy()
        for _, blk in pending:
            windowed[pos[blk]] = True
        columns = {name: getattr(mine, name) for name in _COLUMNS if name not in ("windowed", "run_rows", "windows")}
        columns["windowed"] = windowed
        columns["run_rows"] = rows
        for column, values in columns.items():
            np.save(part / f"{column}.npy", np.ascontiguousarray(values))
        _save_rows(part / "windows.npy", cols.windows, rows, len(cols.digests))
        for k, (block, _) in enumerate(pending):  # ids: this run's rows, as run_rows lists them
            if isinstance(block, Path):
                os.replace(block, part / f"windows-{k:03d}")
            else:
                block.save(part / f"windows-{k:03d}")
        local = np.concatenate([np.arange(len(rows), dtype=np.int64), mine.alt_rows])
        for kind, codes in (("centres", np.concatenate([mine.c64, mine.alt_c64])),
                            ("frames", np.concatenate([mine.p64, mine.alt_p64]))):
            MultiIndex(codes, local, radius=radius).save(part / kind)
        (part / "segment.json").write_text(json.dumps({"rows": int(len(rows)), "blocks": len(pending)}))
        os.replace(part, self.folder / name)
        meta: dict[str, object] = {"format": SNAPSHOT_FORMAT, "features": FEATURE_VERSION,
                                   "segments": [*names, name]}
        tmp = self.folder / "snapshot.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.folder / "snapshot.json")
        for old in self.folder.iterdir():  # segments no manifest names: dropped, or torn by a crash
            if old.is_dir() and old.name not in (*names, name):
                shutil.rmtree(old, ignore_errors=True)
        _drop_least_used(self.folder.parent)


def _save_rows(path: Path, values: np.ndarray, rows: np.ndarray, n: int, *, step: int = CHUNK_ROWS) -> None:
    """``values[rows]`` as a ``.npy`` file, gathered and written ``step`` rows at a time (a
    column without a row for each of the run's ``n`` rows, which :meth:`SearchColumns.take`
    leaves as it is, is written whole)."""
    values = np.asarray(values)
    if values.ndim != 2 or len(values) != n:
        np.save(path, np.ascontiguousarray(values))
        return
    header = {"descr": np.lib.format.dtype_to_descr(values.dtype), "fortran_order": False,
              "shape": (len(rows), values.shape[1])}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for s in range(0, len(rows), step):
            take_rows(values, rows[s : s + step]).tofile(f)  # an incremental run's new rows are scattered


def _drop_least_used(runs: Path) -> None:
    folders = sorted((f for f in runs.iterdir() if f.is_dir()), key=lambda f: f.stat().st_mtime, reverse=True)
    for old in folders[KEEP_SNAPSHOTS:]:
        shutil.rmtree(old, ignore_errors=True)
