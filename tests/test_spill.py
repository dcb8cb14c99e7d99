"""The window codes spilled to a file mapping (neardup.spill): the same data, the same scan."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import numpy as np
import pytest

import neardup
from neardup import spill
from neardup.config import ScanOptions
from neardup.pipeline.ingest import ingest
from neardup.pipeline.rows import load_search_columns
from neardup.spill import release_pages, spilled_zeros
from neardup.store import FeatureCache

from .conftest import corner_crop_corpus, group_shape


def _mapped(arr: np.ndarray) -> bool:
    base: object = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_scattered_rows_are_taken_without_mapping_the_whole_file(monkeypatch):
    rows = 2 * spill.SPILL_BYTES // (93 * 8)  # 128 MB of window codes in a file mapping
    a = spilled_zeros((rows, 93), np.uint64)
    a[:] = np.arange(rows, dtype=np.uint64)[:, None]
    release_pages(a)
    pick = np.random.default_rng(5).choice(rows, 8000, replace=False)  # a crop batch's rows, scattered
    mapped_then: list[float] = []
    release = spill.release_pages

    def watched(arr: np.ndarray) -> None:  # what the gather mapped, read before each release
        mapped_then.append(_rss_file_mb())
        release(arr)

    monkeypatch.setattr(spill, "release_pages", watched)
    before = _rss_file_mb()
    got = spill.take_rows(a[:, 81:], pick)
    assert np.array_equal(got, np.repeat(pick.astype(np.uint64)[:, None], 12, axis=1))
    # gathered at once, the rows' pages and their neighbours' (fault-around) were the whole file
    assert max(mapped_then) - before < 48, (max(mapped_then), before, a.nbytes >> 20)
    ordinary = np.arange(20).reshape(10, 2)
    assert np.array_equal(spill.take_rows(ordinary, np.array([3, 1, 3])), ordinary[[3, 1, 3]])
    assert spill.take_rows(a, np.zeros(0, np.int64)).shape == (0, 93)


def _rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile")


def test_small_columns_stay_ordinary_arrays():
    assert not _mapped(spilled_zeros((1000, 92), np.uint64))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_spilled_column_keeps_its_data_and_gives_its_pages_back():
    rows = spill.SPILL_BYTES // (92 * 8) + 30_000  # past the threshold: a file mapping
    a = spilled_zeros((rows, 92), np.uint64)
    assert _mapped(a) and a.flags.writeable and not a.any()
    pattern = np.arange(rows * 92, dtype=np.uint64).reshape(rows, 92)
    release_pages(a)  # what reading it for zeros brought in
    before = _rss_mb()
    a[:] = pattern
    filled = _rss_mb()
    release_pages(a[10:20])  # any view of it
    after = _rss_mb()
    size_mb = a.nbytes / 2**20
    assert filled - before > 0.8 * size_mb
    assert after < before + 0.2 * size_mb
    assert np.array_equal(a, pattern)  # read back from the file, not zeros
    release_pages(pattern)  # an ordinary array: nothing happens
    assert np.array_equal(a[::7], pattern[::7])


def test_a_scan_with_spilled_windows_finds_what_one_in_memory_finds(tmp_path, monkeypatch):
    root = tmp_path / "files"
    later = corner_crop_corpus(root, left=0.15)  # a right-hand corner: not test_snapshot's
    in_memory = neardup.scan([str(root)], cache=tmp_path / "a", workers=1)
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)
    with FeatureCache(tmp_path / "a") as fc:  # the window column is a file mapping now
        fc.start_run()
        ingest([str(root)], fc, ScanOptions(workers=1), None, lambda *a: None, lambda: None)
        assert _mapped(load_search_columns(fc).windows)
    spilled = neardup.scan([str(root)], cache=tmp_path / "b", workers=1)
    assert group_shape(spilled) == group_shape(in_memory)
    for name, data in later.items():
        (root / name).write_bytes(data)
    again = neardup.scan([str(root)], cache=tmp_path / "b", workers=1)  # columns and windows from the snapshot
    monkeypatch.setattr(spill, "SPILL_BYTES", 64 * 2**20)
    cold = neardup.scan([str(root)], cache=None, workers=1)
    assert sum(any("_corner" in m for m in g.members) for g in cold.groups) >= 3
    assert group_shape(again) == group_shape(cold)
