"""The feature cache: round trips, invalidation, reruns that decode nothing."""

from __future__ import annotations

import os
import shutil

import numpy as np

import neardup
from neardup.features import decode
from neardup.features.extract import FeatureBatch, digest_bytes, features_batch
from neardup.records import Verified
from neardup.store import FeatureCache, FileRow, RunRow

from .conftest import PHOTOS


def test_features_round_trip(tmp_path):
    data = [p.read_bytes() for p in PHOTOS[:3]]
    batch = features_batch([decode(d) for d in data], [digest_bytes(d) for d in data])
    order = np.argsort([d.tobytes() for d in batch.digest])
    batch = batch.take(order)  # fetch wants sorted digests
    digests = [d.tobytes() for d in batch.digest]
    with FeatureCache(tmp_path) as c:
        c.put_batch([FileRow(f"x{i}.jpg", 1, 2, d) for i, d in enumerate(digests)], batch)
        cols = c.fetch(digests, ("p64", "d256", "colour", "canon", "quality", "width", "format", "whash", "sig"))
        assert (cols["p64"] == batch.p64).all() and (cols["d256"] == batch.d256).all()
        assert (cols["colour"] == batch.colour).all() and (cols["canon"] == batch.canon).all()
        assert (cols["width"] == batch.width).all() and tuple(cols["format"]) == batch.format
        assert (cols["whash"].astype(np.int64).view(np.uint64) == batch.whash).all()
        assert np.allclose(cols["quality"], batch.quality, equal_nan=True)
        assert (c.load_signatures(digests) == batch.sig).all()
        f = batch.row(0)
        assert (c.load_signatures([f.digest])[0] == f.sig).all()
        assert c.lookup_files([("x0.jpg", 1, 2)])["x0.jpg"].digest == f.digest
        assert c.lookup_files([("x0.jpg", 1, 3)]) == {}  # mtime changed: not trusted
        assert c.integrity_ok()


def test_known_files_join_the_run_in_the_store_and_only_the_rest_come_back(tmp_path):
    """A listing batch joins the run inside SQLite (ingest's rerun path): exactly the entries
    lookup_files trusts join, a cached failure comes back as one, everything else is unknown."""
    data = [p.read_bytes() for p in PHOTOS[:3]]
    batch = features_batch([decode(d) for d in data], [digest_bytes(d) for d in data])
    digests = [d.tobytes() for d in batch.digest]
    with FeatureCache(tmp_path) as c:
        c.put_batch([FileRow("same.jpg", 10, 20, digests[0]), FileRow("touched.jpg", 10, 20, digests[1]),
                     FileRow("blob", 10, 20, digests[2], etag="v1"), FileRow("copy.jpg", 11, 21, digests[0]),
                     FileRow("broken.jpg", 5, 6, None, "decode", "corrupt", "not an image")], batch)
        listing = [("same.jpg", 10, 20, None), ("touched.jpg", 10, 99, None), ("blob", 10, 20, "v2"),
                   ("broken.jpg", 5, 6, None), ("new.jpg", 1, 1, None), ("copy.jpg", 11, 21, None)]
        c.start_run()
        known = c.add_known_to_run(listing)
        assert known.joined == 2 and known.unknown == [1, 2, 4]
        assert [(i, r.path, r.error_stage, r.error_reason) for i, r in known.failures] == [(3, "broken.jpg", "decode",
                                                                                           "corrupt")]
        trusted = c.lookup_files(listing)
        assert sorted(p for p, r in trusted.items() if r.digest) == ["copy.jpg", "same.jpg"]
        run, counts = c.run_contents()
        assert [d.tobytes() for d in run] == [digests[0]] and counts.tolist() == [2]
        # with a model, a file whose embedding by it is missing is read again
        c.start_run()
        assert c.add_known_to_run(listing, model="lite0").unknown == [0, 1, 2, 4, 5]
        # a batch whose paths the store has none of (a cold run's) is all unknown
        c.start_run()
        cold = c.add_known_to_run([("zz/1.jpg", 1, 1, None), ("zz/2.jpg", 2, 2, None)])
        assert cold.unknown == [0, 1] and cold.joined == 0 and not cold.failures


def test_an_unchanged_run_is_known_by_its_fingerprint_and_a_changed_one_reads_the_last(tmp_path):
    """previous_run hands an unchanged run its own contents back unread (the fingerprint saved
    with them matches); any other contents get what the last run saved."""
    rng = np.random.default_rng(5)
    saved = np.unique(rng.integers(0, 256, size=(50, 16), dtype=np.uint8), axis=0)
    other = np.unique(np.concatenate([saved[:-1], rng.integers(0, 256, size=(3, 16), dtype=np.uint8)]), axis=0)
    with FeatureCache(tmp_path) as c:
        assert c.previous_run("k", current=saved) is None
        c.save_run("k", saved, Verified.empty())
        assert c.previous_run("k", current=saved) is saved
        got = c.previous_run("k", current=other)
        assert got is not other and np.array_equal(got, saved)
        assert np.array_equal(c.previous_run("k"), saved)
        c.save_run("k", other, Verified.empty(), before=got)
        assert c.previous_run("k", current=other) is other
        assert np.array_equal(c.previous_run("k", current=saved), other)
        assert c.previous_run("another key", current=other) is None
        # a writer that does not keep the fingerprint (an older neardup) changed the contents
        c.db.execute("DELETE FROM run_contents WHERE key='k' AND digest=?", (other[0].tobytes(),))
        assert np.array_equal(c.previous_run("k", current=other), other[1:])


def test_run_files_are_the_same_found_in_one_pass_or_through_the_index(tmp_path):
    """Many contents asked at once are found by one pass over the run's table, a few through its
    index: the same files, in path order, either way."""
    rng = np.random.default_rng(9)
    digests = [bytes(d) for d in np.unique(rng.integers(0, 256, size=(1000, 16), dtype=np.uint8), axis=0)]
    rows = [RunRow(f"d{i % 7}/f{i:05d}.jpg", digests[int(k)], 100 + i, 10**9 + i)
            for i, k in enumerate(rng.integers(0, len(digests), size=1500))]
    with FeatureCache(tmp_path) as c:
        c.start_run()
        c.add_run(rows)
        wanted = digests[::1] + digests[:5]  # repeats are asked once
        in_one_pass = c.run_files(wanted)
        through_index = {}
        for s in range(0, len(digests), 100):
            through_index.update(c.run_files(digests[s : s + 100]))
    expected: dict[bytes, list[tuple[str, int, int]]] = {}
    for r in sorted(rows, key=lambda r: (r.digest, r.path)):
        expected.setdefault(r.digest, []).append((r.path, r.size, r.mtime_ns))
    as_tuples = {d: [(f.path, f.size, f.mtime_ns) for f in fs] for d, fs in in_one_pass.items()}
    assert as_tuples == expected
    assert in_one_pass == through_index


def test_run_contents_of_an_empty_run_and_of_digests_of_mixed_length(tmp_path):
    import pytest

    from neardup.errors import CacheError

    with FeatureCache(tmp_path) as c:
        c.start_run()
        digests, counts = c.run_contents()
        assert digests.shape == (0, 16) and counts.shape == (0,)
        c.add_run([RunRow("a.jpg", b"\x01" * 16, 1, 1), RunRow("b.jpg", b"\x02" * 20, 1, 1)])
        with pytest.raises(CacheError, match="mixed length"):
            c.run_contents()


def test_a_cache_inside_the_scanned_folder_is_not_scanned(tmp_path):
    """``--cache`` under a scanned root: the store, its log and the run snapshot are not listed
    (they were read as images: a failure row each, and exit status 3)."""
    root = tmp_path / "photos"
    root.mkdir()
    for p in PHOTOS[:2]:
        shutil.copy(p, root / p.name)
    shutil.copy(PHOTOS[0], root / "copy.jpg")
    cache = root / "sub" / ".neardup"
    first = neardup.scan([str(root)], cache=cache, workers=1)
    again = neardup.scan([str(root)], cache=cache, workers=1)
    assert any((cache / "runs").iterdir())  # there was something to list
    for r in (first, again):
        assert not r.failures and r.stats["images"] == 3
    assert [g.to_dict() for g in again.groups] == [g.to_dict() for g in first.groups]


def test_rerun_decodes_nothing_and_changed_file_is_redone(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for p in PHOTOS:
        shutil.copy(p, src / p.name)
    shutil.copy(PHOTOS[0], src / "copy.jpg")
    cache = tmp_path / "cache"
    r1 = neardup.scan([str(src)], cache=cache, workers=1)
    assert r1.stats["decoded"] + r1.stats["from_cache"] == len(PHOTOS) + 1
    r2 = neardup.scan([str(src)], cache=cache, workers=1)
    assert r2.stats["decoded"] == 0 and r2.stats["from_cache"] == len(PHOTOS) + 1
    assert [g.to_dict() for g in r2.groups] == [g.to_dict() for g in r1.groups]
    target = src / PHOTOS[1].name
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    r3 = neardup.scan([str(src)], cache=cache, workers=1)
    assert r3.stats["decoded"] == 0  # changed mtime: read and digested again, same bytes so no decode
    assert [g.to_dict() for g in r3.groups] == [g.to_dict() for g in r1.groups]
    with FeatureCache(cache) as c:
        assert c.lookup_files([(str(target), target.stat().st_size, target.stat().st_mtime_ns)])



def test_older_cache_layout_is_rebuilt_not_fatal(tmp_path):
    import sqlite3

    with FeatureCache(tmp_path) as c:
        c.put_batch([FileRow("x.jpg", 1, 2, None, "decode", "corrupt", "bad")], FeatureBatch.empty())
    db = sqlite3.connect(tmp_path / "features.sqlite")
    db.execute("UPDATE meta SET value='0' WHERE key='schema'")
    db.commit()
    db.close()
    with FeatureCache(tmp_path) as c:
        assert c.lookup_files([("x.jpg", 1, 2)]) == {}  # old rows gone, cache usable
        assert c.integrity_ok()


def test_an_older_layout_of_the_large_row_tables_is_replaced(tmp_path):
    """Schema 6 kept features, embeddings and local features in WITHOUT ROWID tables; a cache of
    that layout must come back with the rowid tables, not keep the old ones under the new version,
    and with its embeddings and local features moved across, not computed again."""
    import sqlite3

    with FeatureCache(tmp_path):
        pass
    db = sqlite3.connect(tmp_path / "features.sqlite")
    for table, key in (("embeddings", "model"), ("local", "version")):
        db.execute(f"DROP TABLE {table}")
        db.execute(f"CREATE TABLE {table} (digest BLOB NOT NULL, {key} TEXT NOT NULL, x BLOB NOT NULL, "
                   f"PRIMARY KEY (digest, {key})) WITHOUT ROWID")
        db.execute(f"INSERT INTO {table} VALUES (?, 'k', ?)", (b"d" * 16, table.encode()))
    db.execute("UPDATE meta SET value='6' WHERE key='schema'")
    db.commit()
    db.close()
    with FeatureCache(tmp_path) as c:
        assert c.integrity_ok()
    db = sqlite3.connect(tmp_path / "features.sqlite")
    layouts = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type='table'").fetchall())
    db.close()
    for table in ("features", "embeddings", "local"):
        assert "WITHOUT ROWID" not in layouts[table], table
    assert not any(name.endswith("_old") for name in layouts)
    db = sqlite3.connect(tmp_path / "features.sqlite")
    for table in ("embeddings", "local"):  # dear to compute and valid across features versions: kept
        assert db.execute(f"SELECT * FROM {table}").fetchall() == [(b"d" * 16, "k", table.encode())], table
    db.close()


def test_crop_verdicts_are_cached_so_a_rerun_pays_no_crop_test(tmp_path, monkeypatch):
    from PIL import Image

    from neardup.verify import rules

    src = tmp_path / "imgs"
    src.mkdir()
    for p in PHOTOS:
        if p.stem not in ("coffee", "quokka", "rocket"):  # crops of these take the crop path
            continue
        im = Image.open(p).convert("RGB")
        w, h = im.size
        im.save(src / f"{p.stem}.png")
        x, y = int(w * 0.07), int(h * 0.14 / 3)
        im.crop((x, y, x + int(w * 0.86), y + int(h * 0.86))).save(src / f"{p.stem}_crop.jpg", quality=90)
    cache = tmp_path / "cache"
    first = neardup.scan([str(src)], cache=str(cache), workers=1)
    assert any(p.stage == "crop" for g in first.groups for p in g.pairs)

    def no_crop_test(sig_a, *args, **kwargs):
        if len(sig_a):
            raise AssertionError("the crop test ran again although its verdict is cached")
        return rules.CropMatch(np.zeros(0), np.zeros(0, bool), np.zeros((0, 4), np.int64))

    # the function the crop queue really calls; and another radius, so the rerun cannot simply
    # reuse the first run's pairs (its run key differs) and must verify them again
    monkeypatch.setattr(rules, "crop_match", no_crop_test)
    again = neardup.scan([str(src)], cache=str(cache), workers=1, radius=9)
    assert again.stats["reused_pairs"] == 0 and again.stats["verified_pairs"] >= first.stats["verified_pairs"]
    assert [g.members for g in again.groups] == [g.members for g in first.groups]
    assert [[p.to_dict() for p in g.pairs] for g in again.groups] == [[p.to_dict() for p in g.pairs] for g in first.groups]
