"""One segment of a saved index: a batch of contents' search columns, their files, and the two
multi-indexes of their frame and centre codes, as ``.npy`` files mapped on open.

A segment is written once and never changed; ``index add`` writes a new one.  Everything a
query needs about the collection is here or in the index's feature cache (read by digest), so a
query neither lists nor reads the collection.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..candidates.mih import MultiIndex
from ..records import SearchColumns
from ..store import RunFile

__all__ = ["Segment", "SegmentFiles", "FileColumns", "write_segment", "path_hashes", "SEGMENT_FORMAT"]

SEGMENT_FORMAT = "neardup-segment/1"
_COLUMNS = ("digests", "p64", "c64", "alt_rows", "alt_p64", "alt_c64", "low_info", "colourful", "aspect", "slot",
            "windows")


def path_hashes(paths: Iterable[str]) -> np.ndarray:
    """64-bit hashes of file paths: which files an index holds, without holding their names."""
    return np.array([int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8).digest(), "little") for p in paths],
                    dtype=np.uint64)


@dataclass(frozen=True)
class SegmentFiles:
    """A segment's files: ``rows`` (global content rows, ascending), and their paths, sizes and times."""

    rows: np.ndarray  # int64, ascending
    offsets: np.ndarray  # int64 (k + 1,) into ``names``
    names: np.ndarray  # uint8: the UTF-8 paths end to end
    sizes: np.ndarray  # int64
    mtimes: np.ndarray  # int64
    hashes: np.ndarray  # uint64, sorted: path_hashes of every file, for ``index add``

    def of_row(self, row: int) -> list[RunFile]:
        """The files of global content ``row`` held in this segment, in path order."""
        lo, hi = np.searchsorted(self.rows, [row, row + 1])
        return [RunFile(bytes(self.names[self.offsets[i] : self.offsets[i + 1]]).decode(), int(self.sizes[i]),
                        int(self.mtimes[i])) for i in range(int(lo), int(hi))]

    def __len__(self) -> int:
        return int(len(self.rows))


class Segment:
    """A segment folder, memory-mapped: ``cols`` (row i is local content i; global row
    ``base + i``), ``files``, and the ``frames`` and ``centres`` multi-indexes (local ids)."""

    def __init__(self, folder: Path, base: int) -> None:
        meta = json.loads((folder / "segment.json").read_text())
        if meta.get("format") != SEGMENT_FORMAT:
            raise ValueError(f"{folder} is not a segment of format {SEGMENT_FORMAT}")
        self.folder, self.base = folder, base

        def load(name: str) -> np.ndarray:
            # a plain ndarray over the mapping (np.memmap's indexing is a Python call a gather)
            return np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r"))

        c = {k: load(k) for k in _COLUMNS}
        self.cols = SearchColumns(c["digests"], np.ones(len(c["digests"]), np.int32), c["p64"], c["c64"],
                                  c["alt_rows"], c["alt_p64"], c["alt_c64"], c["low_info"], c["colourful"],
                                  windows=c["windows"], aspect=c["aspect"], slot=c["slot"])
        self.files = SegmentFiles(load("file_rows"), load("file_offsets"), load("file_names"), load("file_sizes"),
                                  load("file_mtimes"), load("file_hashes"))
        self.frames = MultiIndex.load(folder / "frames")
        self.centres = MultiIndex.load(folder / "centres")
        #: (n, d) float16 CNN embeddings of a thorough index's rows, None in fast mode
        self.embeddings = load("embeddings") if (folder / "embeddings.npy").exists() else None

    def __len__(self) -> int:
        return int(len(self.cols.digests))

    def find(self, digests: np.ndarray) -> np.ndarray:
        """The local row of each of ``digests`` (k, 16) in this segment, -1 where absent."""
        n = len(self)
        if not n or not len(digests):
            return np.full(len(digests), -1, np.int64)
        width = self.cols.digests.shape[1]
        mine = np.ascontiguousarray(self.cols.digests).view(f"V{width}").ravel()
        want = np.ascontiguousarray(digests).view(f"V{width}").ravel()
        pos = np.minimum(np.searchsorted(mine, want), n - 1)
        return np.where(mine[pos] == want, pos, -1).astype(np.int64)


class FileColumns:
    """Files gathered a chunk at a time as columns (no object per file): global row, path,
    size, time; :meth:`sorted` orders them by row, keeping each row's files in path order."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.names: list[bytes] = []
        self.lengths: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []
        self.mtimes: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []

    def add(self, rows: np.ndarray, files: list[RunFile]) -> None:
        encoded = [f.path.encode() for f in files]
        self.rows.append(np.asarray(rows, np.int64))
        self.names.append(b"".join(encoded))
        self.lengths.append(np.array([len(e) for e in encoded], np.int64))
        self.sizes.append(np.array([f.size for f in files], np.int64))
        self.mtimes.append(np.array([f.mtime_ns for f in files], np.int64))
        self.hashes.append(path_hashes(f.path for f in files))

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows)

    def save(self, folder: Path) -> None:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        rows, lengths = cat(self.rows, np.int64), cat(self.lengths, np.int64)
        names = np.frombuffer(b"".join(self.names), np.uint8)
        starts = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=starts[1:])
        order = np.argsort(rows, kind="stable")
        if np.array_equal(order, np.arange(len(rows))):
            sorted_names = names
        else:  # files of rows an earlier segment holds, added now: put in row order
            sorted_names = np.concatenate([names[starts[i] : starts[i + 1]] for i in order.tolist()]) \
                if len(order) else names
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths[order], out=offsets[1:])
        np.save(folder / "file_rows.npy", rows[order])
        np.save(folder / "file_offsets.npy", offsets)
        np.save(folder / "file_names.npy", sorted_names)
        np.save(folder / "file_sizes.npy", cat(self.sizes, np.int64)[order])
        np.save(folder / "file_mtimes.npy", cat(self.mtimes, np.int64)[order])
        np.save(folder / "file_hashes.npy", np.sort(cat(self.hashes, np.uint64)))


def write_segment(folder: Path, cols: SearchColumns, files: FileColumns, *, radius: int,
                  extra: Callable[[Path], None] | None = None) -> None:
    """Write ``cols`` (rows sorted by digest) and ``files`` as a segment, and what ``extra``
    writes into it; the folder appears whole or not at all (written beside it, then renamed)."""
    part = folder.with_name(folder.name + ".part")
    part.mkdir(parents=True)
    for name in _COLUMNS:
        np.save(part / f"{name}.npy", np.ascontiguousarray(getattr(cols, name)))
    files.save(part)
    n = len(cols.digests)
    rows = np.arange(n, dtype=np.int64)
    for name, codes, alt in (("frames", cols.p64, cols.alt_p64), ("centres", cols.c64, cols.alt_c64)):
        MultiIndex(np.concatenate([codes, alt]), np.concatenate([rows, cols.alt_rows]), radius=radius).save(part / name)
    if extra is not None:
        extra(part)
    (part / "segment.json").write_text(json.dumps({"format": SEGMENT_FORMAT, "rows": n, "files": len(files)}))
    os.replace(part, folder)
