"""Hostile files, dying workers, limits, incremental runs, and a fuzz of the decode stage."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import neardup
from neardup.errors import DecodeError
from neardup.features.decode import decode
from neardup.features.extract import digest_bytes, features_from_decoded

from .conftest import PHOTOS, bomb_png, encode, load_rgb, make_corpus, shape_of


def _frames(fmt: str, n: int, **kw) -> bytes:
    frames = [Image.new("RGB", (32, 24), (i % 256, (7 * i) % 256, 90)) for i in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **kw)
    return buf.getvalue()


def _hostile(root: Path) -> dict[str, str]:
    """Write the corpus; returns {relative name: expected failure reason} for the broken ones."""
    photo = load_rgb(PHOTOS[0])
    jpeg, png = encode(photo, quality=90), encode(photo, "PNG")
    bad = {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "random.jpg": np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        "text.png": b"just some text, named like a picture\n" * 20,
        "page.jpg": b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
        "bomb.png": bomb_png(60000, 60000),
    }
    reasons = {"empty.jpg": "empty-file", "truncated.jpg": "truncated", "truncated.png": "truncated",
               "random.jpg": "not-an-image", "text.png": "not-an-image", "page.jpg": "not-an-image",
               "bomb.png": "too-many-pixels"}
    good = {
        "original.jpg": jpeg,
        "frames.gif": _frames("GIF", 400, duration=10),
        "frames.webp": _frames("WEBP", 300, duration=10),
        "frames.png": _frames("PNG", 300, duration=10),  # APNG
        "cmyk.jpg": encode(photo.convert("CMYK"), quality=90),
        "sixteen.png": encode(Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257), "PNG"),
        "palette.png": encode(photo.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0),
        "name with spaces ünïcødé 写真.jpg": encode(photo.resize((photo.width // 2, photo.height // 2)), quality=85),
        "new\nline <b>html&amp;.jpg": encode(ImageOps.mirror(photo), quality=88),
    }
    ex = photo.getexif()
    ex[0x0112] = 42  # an orientation value that does not exist
    good["bad-orientation.jpg"] = encode(photo, quality=80, exif=ex)
    for name, data in {**bad, **good}.items():
        (root / name).write_bytes(data)
    (root / "folder.jpg").mkdir()  # a directory named like an image: walked, not read
    (root / "folder.jpg" / "inside.png").write_bytes(encode(photo.resize((200, 150)), "PNG"))
    (root / "loop").symlink_to(root)  # a symlink loop
    reasons["loop"] = "symlink-loop"
    return reasons


def test_hostile_corpus_is_failures_with_reasons_and_the_scan_finishes(tmp_path):
    root = tmp_path / "hostile"
    root.mkdir()
    reasons = _hostile(root)
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "neardup", "scan", str(root), "-o", str(out), "--no-cache", "-q"],
                         capture_output=True, text=True)
    assert run.returncode == 3, run.stderr  # finished, with failures (documented; a crash is 2 or a signal)
    res = json.loads(out.read_text())
    got = {str(Path(f["path"]).relative_to(root)): f["reason"] for f in res["failures"]}
    assert got == reasons
    assert all(f["error"] for f in res["failures"])
    members = {str(Path(m).relative_to(root)) for g in res["groups"] for m in g["members"]}
    # the copies under hostile names keep their names exactly and group with the original
    assert {"original.jpg", "name with spaces ünïcødé 写真.jpg", "new\nline <b>html&amp;.jpg",
            "bad-orientation.jpg", "cmyk.jpg"} <= members
    assert res["stats"]["images"] == len(reasons) + 10 + 1  # broken ones (the loop too), good ones, the one inside


def test_file_deleted_between_listing_and_reading_is_a_failure(tmp_path):
    from neardup.pipeline.extract import extract_one

    gone = tmp_path / "gone.jpg"
    o = extract_one(str(gone), 123, 0, 200_000_000).outcomes[0]
    assert o.digest is None and o.error_stage == "read" and o.error_reason == "vanished"


def test_a_worker_killed_mid_scan_costs_nothing(tmp_path):
    """The OOM killer's SIGKILL, simulated for real: the pool breaks, the lost images are rerun
    one per process, and the result is the undisturbed one."""
    root = make_corpus(tmp_path / "files", n_extra=6)
    calm = neardup.scan([str(root)], cache=None, workers=2)
    killed = []

    def progress(stage: str, advance: int, total: int | None) -> None:
        if stage == "extract" and not killed:
            kids = multiprocessing.active_children()
            if kids:
                os.kill(kids[0].pid, signal.SIGKILL)
                killed.append(kids[0].pid)

    r = neardup.scan([str(root)], cache=None, workers=2, batch=4, progress=progress)
    assert killed
    assert r.stats["worker_restarts"] >= 1 and calm.stats["worker_restarts"] == 0  # the recovery really ran
    assert shape_of(r, str(root)) == shape_of(calm, str(root))


def test_time_budget_stops_one_image_not_the_run(tmp_path):
    root = tmp_path / "slow"
    root.mkdir()
    for p in PHOTOS[:2]:
        (root / p.name).write_bytes(p.read_bytes())
    # 256 megapixels of grey: a small file that takes seconds to decode
    Image.new("L", (16000, 16000), 128).save(root / "huge.png", compress_level=1)
    r = neardup.scan([str(root)], cache=None, workers=2, time_budget=0.1, max_pixels=300_000_000)
    assert [(Path(f.path).name, f.reason) for f in r.failures] == [("huge.png", "time-budget")]
    assert r.stats["decoded"] == 2


def test_incremental_run_reads_only_what_changed(tmp_path):
    root = make_corpus(tmp_path / "files")
    cache = tmp_path / "cache"
    first = neardup.scan([str(root)], cache=cache, workers=2)
    # add two files, change one, delete one
    photo = load_rgb(PHOTOS[1])
    (root / "new_copy.jpg").write_bytes(encode(photo.resize((photo.width // 3, photo.height // 3)), quality=70))
    (root / "new_other.png").write_bytes(encode(Image.new("RGB", (90, 60), (10, 200, 30)), "PNG"))
    changed = root / "copies" / "deep" / f"{PHOTOS[2].stem}_flip.png"
    changed.write_bytes(encode(Image.new("RGB", (80, 80), (250, 250, 0)), "PNG"))
    deleted = root / "copies" / f"{PHOTOS[3].stem} small.jpg"
    deleted.unlink()
    again = neardup.scan([str(root)], cache=cache, workers=2)
    assert again.stats["read"] == 3 and again.stats["decoded"] == 3
    touched = {PHOTOS[1].stem, PHOTOS[2].stem, PHOTOS[3].stem}

    def untouched(res: neardup.ScanResult) -> list[list[str]]:
        return sorted(sorted(g.members) for g in res.groups if not any(t in m for m in g.members for t in touched))

    assert untouched(again) == untouched(first)
    g1 = next(g for g in again.groups if any(PHOTOS[1].stem in m for m in g.members))
    assert str(root / "new_copy.jpg") in g1.members
    assert not any(str(changed) in g.members or str(deleted) in g.members for g in again.groups)


def _groups(res: neardup.ScanResult) -> list[tuple[str, list[str]]]:
    return sorted((g.keep, sorted(g.members)) for g in res.groups)


def test_incremental_search_equals_a_full_search(tmp_path):
    # an incremental run searches only the contents new since the last run over the same roots,
    # and reuses that run's verified pairs: its groups must be those of a cold full scan, also for
    # pairs only the centre window finds (an original seen before, its crop new), and after
    # deletions
    root = tmp_path / "files"
    root.mkdir()
    later: dict[str, bytes] = {}
    for i, p in enumerate(PHOTOS):
        im = load_rgb(p)
        w, h = im.size
        crop = im.crop((int(w * 0.06), int(h * 0.06), int(w * 0.94), int(h * 0.94)))
        copies = {f"{p.stem}.jpg": encode(im, quality=92), f"{p.stem}_crop.jpg": encode(crop, quality=88),
                  f"{p.stem}_flip.jpg": encode(ImageOps.mirror(im), quality=85),
                  f"{p.stem}_small.jpg": encode(im.resize((w // 2, h // 2)), quality=80)}
        for k, (name, data) in enumerate(copies.items()):
            if (k + i) % 2:
                later[name] = data
            else:
                (root / name).write_bytes(data)
    cache = tmp_path / "cache"
    neardup.scan([str(root)], cache=cache, workers=1)
    for name, data in later.items():
        (root / name).write_bytes(data)
    again = neardup.scan([str(root)], cache=cache, workers=1)
    assert 0 < again.stats["searched_contents"] < again.stats["unique_contents"] and again.stats["reused_pairs"] > 0
    cold = neardup.scan([str(root)], cache=None, workers=1)
    assert _groups(again) == _groups(cold)
    assert any(f"{PHOTOS[1].stem}_crop.jpg" in m for g in cold.groups for m in g.members)
    for name in list(later)[:3]:
        (root / name).unlink()
    third = neardup.scan([str(root)], cache=cache, workers=1)
    assert third.stats["searched_contents"] == 0
    assert _groups(third) == _groups(neardup.scan([str(root)], cache=None, workers=1))


_SEEDS = [p.read_bytes() for p in PHOTOS[:2]] + [encode(load_rgb(PHOTOS[2]).resize((120, 90)), "PNG"),
                                                 encode(load_rgb(PHOTOS[3]).resize((120, 90)), "WEBP")]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at: at + draw(st.integers(1, 4096))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif data:
            data[at: at + 16] = bytes(min(16, len(data) - at))
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.one_of(mutated(), st.binary(max_size=2048)))
def test_fuzz_decode_and_features_never_crash(data):
    """Mutated real files and random bytes: the decode and feature stage either gives features
    or a DecodeError with a reason; nothing else escapes.  (benchmarks/fuzz.py runs more.)"""
    try:
        dec = decode(data, max_pixels=50_000_000)
    except DecodeError as e:
        assert e.reason and str(e)
        return
    f = features_from_decoded(dec, digest_bytes(data))
    assert f.width > 0 and f.height > 0


def test_worker_memory_limit_makes_one_failure(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    (root / PHOTOS[0].name).write_bytes(PHOTOS[0].read_bytes())
    # 144 megapixels of RGB: ~430 MB decoded, more than 256 MB above what the worker started with
    Image.new("RGB", (12000, 12000), (120, 30, 200)).save(root / "huge.png", compress_level=1)
    r = neardup.scan([str(root)], cache=None, workers=2, worker_memory=256, max_pixels=300_000_000)
    assert [(Path(f.path).name, f.reason) for f in r.failures] == [("huge.png", "out-of-memory")]
    assert r.stats["decoded"] == 1


def test_overlapping_roots_list_each_file_once(tmp_path):
    root = tmp_path / "a"
    (root / "b").mkdir(parents=True)
    for p in PHOTOS[:2]:
        (root / "b" / p.name).write_bytes(p.read_bytes())
    r = neardup.scan([str(root), str(root / "b"), str(root) + "/"], cache=None, workers=1)
    assert r.stats["images"] == 2 and r.groups == []


def test_the_compiled_listing_gives_what_os_scandir_gives(tmp_path):
    """Every kind of entry a folder may hold, listed by the compiled loop (dir_loop.c) and by
    os.scandir: the same files, problems and skipped names, in the same order."""
    import pytest

    from neardup.sources.local import COMPILED, folder_key, walk

    if not COMPILED:
        pytest.skip("the folder listing was not compiled at install (no C compiler)")
    root = tmp_path / "tree"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a").mkdir()
    for rel in ("z.jpg", "A.JPG", "notes.TXT", ".hidden.png", "a/1.png", "a/10.png", "a/2.png", "b/deeper/x.webp",
                "name with spaces ünïcødé.jpg", "b/archive.tar.gz", "b/noext"):
        (root / rel).write_bytes(b"x" * len(rel))
    os.utime(root / "z.jpg", ns=(1, 1_234_567_891_234_567_891))
    (root / os.fsdecode(b"bytes-\xff-name.jpg")).write_bytes(b"y")  # not UTF-8: decoded as os.fsdecode does
    (root / "b" / "to-a").symlink_to(root / "a")  # followed
    (root / "b" / "deeper" / "up").symlink_to(root)  # a loop
    (root / "broken.jpg").symlink_to(root / "nothing-here")
    (root / "self.jpg").symlink_to(root / "self.jpg")  # a link to itself: too many levels
    os.mkfifo(root / "pipe.jpg")  # neither file nor folder: passed over
    locked = root / "locked"
    locked.mkdir()
    (locked / "in.jpg").write_bytes(b"z")
    locked.chmod(0)
    try:
        for start in (str(root), str(root) + "/"):
            skipped: dict[str, list[str]] = {"scandir": [], "compiled": []}
            got = {engine: list(walk(start, on_skip=skipped[engine].append, engine=engine))
                   for engine in ("scandir", "compiled")}
            assert got["compiled"] == got["scandir"]
            top = [Path(e.path).name for e in got["compiled"] if Path(e.path).parent == root]
            assert top == sorted(top) and len(top) >= 5  # a folder's entries by name
            assert skipped["compiled"] == skipped["scandir"] and len(skipped["compiled"]) == 2
            problems = {Path(p.path).name: p.reason for p in got["compiled"] if not hasattr(p, "size")}
            assert problems["up"] == "symlink-loop" and problems["broken.jpg"] == "unreadable"
            assert problems["self.jpg"] == "symlink-loop"
            files = {Path(f.path).name: f for f in got["compiled"] if hasattr(f, "size")}
            assert files["z.jpg"].mtime_ns == 1_234_567_891_234_567_891 and files["z.jpg"].size == len("z.jpg")
            # a folder to leave out (the scan's own cache) is not entered, by either listing
            skip = frozenset({folder_key(str(root / "b"))})
            for engine in ("scandir", "compiled"):
                kept = [e.path for e in walk(start, engine=engine, skip_dirs=skip)]
                assert kept == [e.path for e in got[engine] if "/b/" not in e.path]
    finally:
        locked.chmod(0o755)


def test_a_name_that_is_not_utf8_is_a_failure_row_and_the_scan_goes_on(tmp_path):
    """A file name with bytes that are not UTF-8 (os.fsdecode keeps them as lone surrogates,
    which neither the store nor results.json can hold as text) crashed the scan."""
    root = tmp_path / "names"
    root.mkdir()
    data = PHOTOS[0].read_bytes()
    (root / "fine.jpg").write_bytes(data)
    with open(os.path.join(os.fsencode(root), b"odd-\xff-name.jpg"), "wb") as f:
        f.write(data)
    r = neardup.scan([str(root)], cache=tmp_path / "cache", workers=1)
    (failure,) = r.failures
    assert failure.reason == "unencodable-name" and failure.stage == "scan"
    assert failure.path == str(root / "odd-\\xff-name.jpg")  # its stray byte written out
    assert r.stats["images"] == 2 and not r.groups  # the copy is not scanned, so no group
    r.to_json().encode("utf-8")  # results.json stays UTF-8 text


def test_a_root_that_is_not_utf8_is_a_usage_error_before_any_work(tmp_path):
    import pytest

    from neardup.errors import UsageError

    odd = os.path.join(os.fsencode(tmp_path), b"root-\xfe")
    os.mkdir(odd)
    with open(os.path.join(odd, b"a.jpg"), "wb") as f:
        f.write(PHOTOS[0].read_bytes())
    with pytest.raises(UsageError, match="not valid UTF-8"):
        neardup.scan([os.fsdecode(odd)], cache=tmp_path / "cache", workers=1)
    assert not (tmp_path / "cache").exists()  # nothing was done
    # the folder above it scans, the file under it a failure row
    r = neardup.scan([str(tmp_path)], cache=None, workers=1)
    assert [f.reason for f in r.failures] == ["unencodable-name"]
