"""Queries against a saved index: the same copies a full scan would pair, without the collection.

The reference is the scan's own search and verification run over the collection and the
queries together (``find_pairs``); a query must give exactly its pairs with collection
contents, on random collections of random edits (hypothesis).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import neardup
from neardup import actions
from neardup.config import ScanOptions
from neardup.errors import UsageError
from neardup.index import INDEX_FORMAT
from neardup.pipeline.ingest import ingest
from neardup.pipeline.rows import RowAccess, load_search_columns
from neardup.pipeline.search import find_pairs
from neardup.store import FeatureCache
from neardup.verify.rules import VerifyParams

from .conftest import PHOTOS, encode, load_rgb

SMALL = {p.stem: (lambda im: im.resize((320, 320 * im.height // im.width)))(load_rgb(p)) for p in PHOTOS}
PNG_MAGIC = b"\x89PNG"
EDITS = ("save", "small", "mirror", "crop", "png", "dark", "corner", "tilt", "wide")


def _edit(im: Image.Image, edit: str, q: int) -> bytes:
    w, h = im.size
    if edit == "small":
        return encode(im.resize((w * 2 // 3, h * 2 // 3)), quality=q)
    if edit == "mirror":
        return encode(ImageOps.mirror(im), quality=q)
    if edit == "crop":
        return encode(im.crop((w // 12, h // 14, w - w // 20, h - h // 16)), quality=q)
    if edit == "corner":  # a crop of 80% by 85% at a corner: found by a crop window, not the centre
        return encode(im.crop((0, h - h * 85 // 100, w * 80 // 100, h)), quality=q)
    if edit == "tilt":  # turned 5 degrees and trimmed as tools trim: found by a tilted frame
        turned = im.rotate(5, resample=Image.Resampling.BICUBIC)
        return encode(turned.crop((w // 11, h // 11, w - w // 11, h - h // 11)), quality=q)
    if edit == "wide":  # the original holds the query: the query's crop windows find it
        return encode(im.crop((w // 6, 0, w, h * 9 // 10)), quality=q)
    if edit == "png":
        return encode(im, "PNG")
    if edit == "dark":
        return encode(im.point(lambda v: int(v * 0.8)), quality=q)
    return encode(im, quality=q)


def _scan_pairs(paths: list[str]) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """The scan's verified pairs of contents (hex digests, sorted pair) over ``paths``, and the
    digest of each file: what a full scan of everything together pairs."""
    opts = ScanOptions(workers=1)
    with FeatureCache(None) as fc, ThreadPoolExecutor(1) as threads:
        ingest(paths, fc, opts, None, lambda *a: None, lambda: None)
        cols = load_search_columns(fc)
        found = find_pairs(cols, fc, RowAccess(fc, cols), paths, opts, VerifyParams(), incremental=False,
                           threads=threads, progress=lambda *a: None)
        pairs = {tuple(sorted((cols.digest(int(a)).hex(), cols.digest(int(b)).hex())))
                 for v in found.verified for a, b in zip(v.a, v.b)}
        digests = {f.path: d.hex() for d, fs in fc.run_files([cols.digest(r) for r in range(len(cols.digests))]).items()
                   for f in fs}
    return pairs, digests  # type: ignore[return-value]


@st.composite
def collections(draw):
    """Photos with 1-3 edited copies each in the collection, and 1-4 query images: edits of
    some of those photos (or of photos the collection lacks), maybe a byte copy of a member."""
    names = sorted(SMALL)
    in_coll = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    coll = {}
    for n in in_coll:
        for k, e in enumerate(draw(st.lists(st.sampled_from(EDITS), min_size=1, max_size=3, unique=True))):
            coll[f"{n}_{k}_{e}"] = _edit(SMALL[n], e, draw(st.integers(60, 95)))
    queries = {}
    for k in range(draw(st.integers(1, 4))):
        n, e = draw(st.sampled_from(names)), draw(st.sampled_from(EDITS))
        queries[f"q{k}_{n}_{e}"] = _edit(SMALL[n], e, draw(st.integers(60, 95)))
    if draw(st.booleans()):
        queries["q_byte_copy"] = coll[sorted(coll)[0]]
    return coll, queries


def _write(root: Path, files: dict[str, bytes]) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in files.items():
        ext = "png" if data.startswith(PNG_MAGIC) else "jpg"
        p = root / f"{name}.{ext}"
        p.write_bytes(data)
        out.append(str(p))
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(collections())
def test_a_query_finds_the_copies_a_full_scan_pairs(tmp_path_factory, case):
    coll, queries = case
    tmp = tmp_path_factory.mktemp("idx")
    _write(tmp / "coll", coll)
    qpaths = _write(tmp / "q", queries)
    index = neardup.Index.build([str(tmp / "coll")], tmp / "index", workers=1)
    got = index.query([str(tmp / "q")], workers=1)
    pairs, digest_of = _scan_pairs([str(tmp / "coll"), str(tmp / "q")])
    coll_digests = {d for p, d in digest_of.items() if p.startswith(str(tmp / "coll"))}
    assert sorted(x.query for x in got.queries) == sorted(qpaths)
    for x in got.queries:
        mine = digest_of[x.query]
        want = {d for pair in pairs if mine in pair for d in pair if d != mine} & coll_digests
        want |= {mine} & coll_digests  # a byte copy of a member
        assert {digest_of[m.path] for m in x.matches} == want, (x.query, [m.to_dict() for m in x.matches])
        assert all(m.stage == "exact" for m in x.matches if digest_of[m.path] == mine)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("cli-index")
    coll = root / "coll"
    for n, im in SMALL.items():
        _write(coll / n, {"orig": _edit(im, "save", 92), "small": _edit(im, "small", 80)})
    run = subprocess.run([sys.executable, "-m", "neardup", "index", "build", str(coll), "--index", str(root / "idx"),
                          "-q"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return root, coll, root / "idx"


def test_query_by_cli_needs_no_collection_and_writes_matches_json(built, tmp_path):
    root, coll, idx = built
    names = sorted(SMALL)
    q = tmp_path / "q"
    _write(q, {"mirror": _edit(SMALL[names[0]], "mirror", 85), "crop": _edit(SMALL[names[1]], "crop", 88)})
    (q / "broken.jpg").write_bytes(b"\xff\xd8 not a picture")
    gone = tmp_path / "moved-away"
    shutil.move(str(coll), gone)  # the collection is neither listed nor read by a query
    try:
        out = tmp_path / "matches.json"
        run = subprocess.run([sys.executable, "-m", "neardup", "query", str(q), "--index", str(idx), "-o", str(out),
                              "-q"], capture_output=True, text=True)
        assert run.returncode == 3, run.stderr  # finished, one query file failed
        data = json.loads(out.read_text())
    finally:
        shutil.move(str(gone), coll)
    by_query = {Path(x["query"]).name: x["matches"] for x in data["queries"]}
    assert set(by_query) == {"mirror.jpg", "crop.jpg"}
    assert {Path(m["path"]).parent.name for m in by_query["mirror.jpg"]} == {names[0]}
    assert {Path(m["path"]).name for m in by_query["mirror.jpg"]} == {"orig.jpg", "small.jpg"}
    assert {m["stage"] for m in by_query["crop.jpg"]} <= {"hash", "crop"} and by_query["crop.jpg"]
    assert all(Path(m["path"]).parent.name == names[1] for m in by_query["crop.jpg"])
    assert all(m["kind"] == "copy" and "evidence" in m for ms in by_query.values() for m in ms)
    assert [Path(f["path"]).name for f in data["failures"]] == ["broken.jpg"]
    assert data["stats"]["index_files"] == 2 * len(SMALL)


def test_index_add_appends_only_what_is_new(built, tmp_path):
    root, coll, idx = built
    copy = tmp_path / "idx"
    shutil.copytree(idx, copy)
    extra = tmp_path / "extra"
    name = sorted(SMALL)[2]
    _write(extra, {"dark": _edit(SMALL[name], "dark", 90)})
    shutil.copy(coll / name / "orig.jpg", extra / "same-bytes.jpg")
    index = neardup.Index.open(copy)
    before = (index.rows, index.files)
    got = index.add([str(extra)], workers=1)
    assert (got.images, got.files, got.contents, got.failures) == (2, 2, 1, [])
    again = neardup.Index.open(copy).add([str(extra), str(coll)], workers=1)
    assert again.files == 0  # every file is held already
    reopened = neardup.Index.open(copy)
    assert (reopened.rows, reopened.files) == (before[0] + 1, before[1] + 2)
    q = tmp_path / "q"
    _write(q, {"query": _edit(SMALL[name], "save", 75)})
    (x,) = reopened.query([str(q)], workers=1).queries
    assert {Path(m.path).name for m in x.matches} == {"orig.jpg", "small.jpg", "dark.jpg", "same-bytes.jpg"}


def test_an_index_says_what_to_do_when_it_cannot_serve(tmp_path):
    with pytest.raises(UsageError, match="index build"):
        neardup.Index.open(tmp_path / "nothing")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "index.json").write_text(json.dumps({"format": INDEX_FORMAT, "features": "nd-features-1",
                                                              "segments": []}))
    with pytest.raises(UsageError, match="build the index again"):
        neardup.Index.open(tmp_path / "old")
    (tmp_path / "old" / "index.json").write_text(json.dumps({"format": "neardup-index/0", "segments": []}))
    with pytest.raises(UsageError, match="build it again"):
        neardup.Index.open(tmp_path / "old")
    with pytest.raises(UsageError, match="--reference"):
        neardup.Index.build([str(tmp_path)], tmp_path / "t", reference=(str(tmp_path),))


def test_matches_name_files_a_plan_can_check(built):
    """Matches carry paths as listed at build time: the same files ``apply`` would digest."""
    root, coll, idx = built
    name = sorted(SMALL)[0]
    x = neardup.Index.open(idx).query([str(coll / name / "orig.jpg")], workers=1).queries[0]
    exact = [m for m in x.matches if m.stage == "exact"]
    assert not exact  # the query file itself is the indexed file: not its own match
    (m,) = [m for m in x.matches if Path(m.path).name == "small.jpg"]
    assert m.path == str(coll / name / "small.jpg")  # the path as the build listed it, resolvable now
    assert actions.file_digest(m.path) != actions.file_digest(str(coll / name / "orig.jpg"))
    assert m.stage == "hash" and m.distance is not None and np.isfinite(m.evidence["colour"])


def test_index_build_reports_unreadable_files_and_refuses_to_overwrite(tmp_path):
    coll = tmp_path / "coll"
    _write(coll, {"one": _edit(SMALL[sorted(SMALL)[0]], "save", 90)})
    (coll / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    idx = tmp_path / "idx"
    run = subprocess.run([sys.executable, "-m", "neardup", "index", "build", str(coll), "--index", str(idx), "-q"],
                         capture_output=True, text=True)
    assert run.returncode == 3 and "broken.jpg" in run.stderr, run.stdout + run.stderr
    assert neardup.Index.open(idx).files == 1
    again = subprocess.run([sys.executable, "-m", "neardup", "index", "build", str(coll), "--index", str(idx), "-q"],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "index add" in again.stderr


def test_a_thorough_index_finds_a_heavy_crop_without_reading_the_collection(model_cache, tmp_path):
    """Thorough mode: the collection's embeddings sit in the index and its local features are
    cached when it is built; a query of a 55% crop (beyond fast mode's crop windows) finds its
    original by the embeddings and the local check, with the collection moved away."""
    coll = tmp_path / "coll"
    names = sorted(SMALL)
    for n in names:
        _write(coll, {n: encode(load_rgb(next(p for p in PHOTOS if p.stem == n)), quality=92)})
    idx = tmp_path / "idx"
    (idx / "cache").mkdir(parents=True)
    (idx / "cache" / "models").symlink_to(Path(model_cache) / "models")
    run = subprocess.run([sys.executable, "-m", "neardup", "index", "build", str(coll), "--index", str(idx), "--mode",
                          "thorough", "-q"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    im = load_rgb(next(p for p in PHOTOS if p.stem == names[0]))
    w, h = im.size
    q = tmp_path / "q"
    _write(q, {"heavy_crop": encode(im.crop((w // 5, h // 6, w // 5 + w * 55 // 100, h // 6 + h * 55 // 100)),
                                    quality=88)})
    fast = neardup.Index.build([str(coll)], tmp_path / "fast-idx", workers=1).query([str(q)], workers=1)
    assert not fast.queries[0].matches  # beyond the fast codes
    away = tmp_path / "away"
    shutil.move(str(coll), away)
    try:
        (x,) = neardup.Index.open(idx).query([str(q)], workers=1).queries
    finally:
        shutil.move(str(away), coll)
    assert [Path(m.path).stem for m in x.matches] == [names[0]]
    assert x.matches[0].stage in ("local", "embedding") and x.matches[0].evidence["cosine"] > 0.5
