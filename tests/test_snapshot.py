"""Run snapshots: the next run over the same roots reads its rows' columns and the old rows'
window indexes from memory-mapped files, and must find exactly what it would without them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import neardup
from neardup.candidates import search as search_mod
from neardup.candidates.search import candidate_batches
from neardup.pipeline import snapshot as snapshot_mod
from neardup.pipeline.rows import load_search_columns
from neardup.pipeline.snapshot import RunSnapshot
from neardup.records import SearchColumns
from neardup.store import FeatureCache

from .conftest import corner_crop_corpus, group_shape


def _columns(rng: np.random.Generator, n: int, radius: int, low_share: float) -> SearchColumns:
    """Random rows whose frames, crop windows and centres (in either orientation) are often
    within ``radius`` of other rows' frames."""
    per = 5
    p64 = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)

    def near_frames(codes: np.ndarray, share: float = 1 / 3) -> None:  # some near another row's frame
        for i in np.flatnonzero(rng.random(codes.shape[0]) < share).tolist():
            code = p64[int(rng.integers(0, n))]
            for f in rng.integers(0, 64, size=int(rng.integers(0, radius + 2))).tolist():
                code ^= np.uint64(1) << np.uint64(f)
            codes.reshape(len(codes), -1)[i, int(rng.integers(0, codes.size // max(len(codes), 1)))] = code

    near_frames(p64)  # copies of one another
    c64 = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    windows = rng.integers(0, 2**63, size=(n, per), dtype=np.int64).astype(np.uint64)
    near_frames(windows, 1 / 2)
    near_frames(c64)
    digests = np.unique(rng.integers(0, 256, size=(n * 2, 16), dtype=np.uint8), axis=0)[:n]
    alt_rows = np.flatnonzero(rng.random(n) < 0.2).astype(np.int64)
    alt_p64 = rng.integers(0, 2**63, size=len(alt_rows), dtype=np.int64).astype(np.uint64)
    alt_c64 = rng.integers(0, 2**63, size=len(alt_rows), dtype=np.int64).astype(np.uint64)
    near_frames(alt_p64)
    near_frames(alt_c64)
    return SearchColumns(digests, np.ones(n, np.int32), p64, c64, alt_rows, alt_p64, alt_c64,
                         rng.random(n) < low_share, np.zeros(n, bool), windows=windows,
                         aspect=np.ones(n, np.float32), slot=np.zeros(n, np.uint64))


def _pairs(cols: SearchColumns, fresh: np.ndarray, radius: int, saved: RunSnapshot | None = None) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for pb in candidate_batches(cols, fresh, radius=radius, saved=saved):
        out.update(zip(pb.a.tolist(), pb.b.tolist()))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 90), radius=st.integers(0, 8), fresh_share=st.floats(0, 1),
       low_share=st.floats(0, 0.3), block=st.integers(8, 60), staged=st.booleans())
def test_saved_indexes_find_what_indexing_anew_finds(seed, n, radius, fresh_share, low_share, block, staged):
    """Two earlier runs (the second adding rows, so its segment holds rows that are not the
    run's first ones) then one with fresh rows; window blocks wait in memory or on disk
    (``staged``) for their segment."""
    rng = np.random.default_rng(seed)
    cols = _columns(rng, n, radius, low_share)
    fresh = rng.random(n) < fresh_share
    old = np.flatnonzero(~fresh)
    with (tempfile.TemporaryDirectory() as tmp, mock.patch.object(search_mod, "WINDOW_BLOCK", block),
          mock.patch.object(snapshot_mod, "KEEP_IN_MEMORY", 0 if staged else 10**6)):
        old_cols = cols.take(old)
        added = rng.random(len(old)) < 0.5  # the old rows the second earlier run added
        for rows, new in ((np.flatnonzero(~added), None), (np.arange(len(old)), added)):
            earlier = RunSnapshot(Path(tmp) / "run")
            run_cols = old_cols.take(rows)
            earlier.locate(run_cols.digests)
            _pairs(run_cols, np.ones(len(rows), bool) if new is None else new, radius, earlier)
            earlier.save(run_cols, radius=radius)
        later = RunSnapshot(Path(tmp) / "run")
        seg, _ = later.locate(cols.digests)
        assert ((seg >= 0) == ~fresh).all() and (later.windowed(n) <= ~fresh).all()
        assert _pairs(cols, fresh, radius, later) == _pairs(cols, fresh, radius)
        if not len(old):
            return
        # and the columns read back are those saved
        got = later.gather(*later.locate(cols.digests))
        assert np.array_equal(got["rows"], old) and np.array_equal(got["windows"], cols.windows[old])
        assert np.array_equal(got["p64"], cols.p64[old]) and np.array_equal(got["low_info"], cols.low_info[old])
        want_alts = np.flatnonzero(np.isin(cols.alt_rows, old))
        order = np.argsort(got["alt_rows"], kind="stable")
        assert np.array_equal(got["alt_rows"][order], cols.alt_rows[want_alts])
        assert np.array_equal(got["alt_p64"][order], cols.alt_p64[want_alts])


def _first_run(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, bytes]]:
    """Originals scanned on a cache: (folder, cache, snapshot folder, the crops to add later)."""
    root = tmp_path / "files"
    root.mkdir()
    later = corner_crop_corpus(root)
    cache = tmp_path / "cache"
    neardup.scan([str(root)], cache=cache, workers=1)
    (runs,) = (cache / "runs").iterdir()
    return root, cache, runs, later


def _add(root: Path, later: dict[str, bytes]) -> None:
    for name, data in later.items():
        (root / name).write_bytes(data)


def test_a_rerun_reads_the_snapshot_and_finds_what_a_cold_scan_finds(tmp_path):
    root, cache, runs, later = _first_run(tmp_path)
    assert len([s for s in runs.iterdir() if s.is_dir()]) == 1
    _add(root, later)
    again = neardup.scan([str(root)], cache=cache, workers=1)
    cold = neardup.scan([str(root)], cache=None, workers=1)
    assert group_shape(again) == group_shape(cold)
    assert sum(any("_corner" in m for m in g.members) for g in cold.groups) >= 3
    assert len([s for s in runs.iterdir() if s.is_dir()]) == 2  # the new rows' segment
    # every row of this run is now in the snapshot: the columns come back as the store gives them
    with FeatureCache(cache) as fc:
        fc.start_run()
        from neardup.config import ScanOptions
        from neardup.pipeline.ingest import ingest

        ingest([str(root)], fc, ScanOptions(workers=1), None, lambda *a: None, lambda: None)
        snap = RunSnapshot(runs)
        from_snapshot, from_store = load_search_columns(fc, snap), load_search_columns(fc)
        assert snap.covered(len(from_store.digests)).all()
    for field in SearchColumns.__dataclass_fields__:
        assert np.array_equal(getattr(from_snapshot, field), getattr(from_store, field)), field


def test_an_unchanged_rerun_uses_the_saved_columns_as_they_are(tmp_path):
    """When the one saved segment holds exactly this run's rows, the columns come from it
    without a copy (the window codes stay its read-only mapping) and equal the store's."""
    root, cache, runs, _ = _first_run(tmp_path)
    with FeatureCache(cache) as fc:
        fc.start_run()
        from neardup.config import ScanOptions
        from neardup.pipeline.ingest import ingest

        ingest([str(root)], fc, ScanOptions(workers=1), None, lambda *a: None, lambda: None)
        snap = RunSnapshot(runs)
        from_snapshot, from_store = load_search_columns(fc, snap), load_search_columns(fc)
    assert len(snap.segments) == 1 and not from_snapshot.windows.flags.writeable
    for field in SearchColumns.__dataclass_fields__:
        assert np.array_equal(getattr(from_snapshot, field), getattr(from_store, field)), field


def test_an_unchanged_rerun_without_a_snapshot_writes_one(tmp_path):
    """A snapshot lost (or of an older format, after an upgrade) must not leave every later
    unchanged rerun reading its columns from the store: the first such rerun writes it again."""
    root, cache, runs, _ = _first_run(tmp_path)
    shutil.rmtree(runs)
    again = neardup.scan([str(root)], cache=cache, workers=1)
    assert again.stats["searched_contents"] == 0
    (rewritten,) = (cache / "runs").iterdir()
    with FeatureCache(cache) as fc:
        fc.start_run()
        from neardup.config import ScanOptions
        from neardup.pipeline.ingest import ingest

        ingest([str(root)], fc, ScanOptions(workers=1), None, lambda *a: None, lambda: None)
        snap = RunSnapshot(rewritten)
        n = len(load_search_columns(fc, snap).digests)
    assert snap.covered(n).all()


def test_a_damaged_or_foreign_snapshot_is_ignored(tmp_path):
    root, cache, runs, later = _first_run(tmp_path)
    (runs / "snapshot.json").write_text("{not json")
    _add(root, later)
    again = neardup.scan([str(root)], cache=cache, workers=1)
    assert group_shape(again) == group_shape(neardup.scan([str(root)], cache=None, workers=1))


def test_an_unchanged_group_is_not_settled_again_and_a_changed_one_is(tmp_path, monkeypatch):
    """A rerun takes the last run's groups for components nothing changed in (the keeper
    contest is its dear part), and settles again exactly those whose files changed."""
    from neardup.pipeline import grouping

    root, cache, _, later = _first_run(tmp_path)
    _add(root, later)
    neardup.scan([str(root)], cache=cache, workers=1)
    settled: list[int] = []
    real = grouping.settle_keepers

    def counting(comps, *args, **kwargs):
        settled.append(len(comps))
        return real(comps, *args, **kwargs)

    monkeypatch.setattr(grouping, "settle_keepers", counting)
    same = neardup.scan([str(root)], cache=cache, workers=1)
    assert settled == [0] and group_shape(same) == group_shape(neardup.scan([str(root)], cache=None, workers=1))
    assert same.stats["reused_components"] >= 3
    # a member renamed: its component's groups must name the new path, so that one is settled again
    name = next(n for n in later if any(m.endswith("/" + n) for g in same.groups for m in g.members))
    (root / name).rename(root / f"renamed {name}")
    settled.clear()
    moved = neardup.scan([str(root)], cache=cache, workers=1)
    assert settled[0] == 1
    assert any(f"renamed {name}" in m for g in moved.groups for m in g.members)
    assert group_shape(moved) == group_shape(neardup.scan([str(root)], cache=None, workers=1))
