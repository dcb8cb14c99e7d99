"""What a new user meets first: relative paths that still mean the same files from anywhere,
flags checked before work, a keeper that is the original, a funnel and progress with totals,
and a review page that says what it shows."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import neardup
from neardup import actions
from neardup.group.files import copy_mark

from .conftest import PHOTOS, encode, load_rgb
from .test_actions import _snapshot, trees
from .test_report import _open

ROOT = Path(__file__).resolve().parents[1]


def _neardup(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "neardup", *args], capture_output=True, text=True, cwd=cwd, env=env)


# -- relative paths: apply and undo from anywhere ----------------------------------------
def _relative_results(base: Path, groups: list[list[str]]) -> dict:
    out = []
    for g in groups:
        out.append({"keep": g[0], "members": list(g), "reason": "", "pairs": [],
                    "digests": {m: actions.file_digest(str(base / m)) for m in g}})
    return {"groups": out, "failures": [], "stats": {"settings": {"digest": actions.DIGEST}},
            "scan": {"cwd": str(base), "roots": []}}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), action=st.sampled_from(["quarantine", "hardlink", "symlink"]),
       apply_in=st.sampled_from(["tree", "tree/a", "elsewhere", "/"]),
       undo_in=st.sampled_from(["tree", "tree/a", "elsewhere", "/"]))
def test_relative_results_apply_and_undo_from_any_folder(tree, action, apply_in, undo_in):
    files, groups = tree
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        (root / "a").mkdir(parents=True)
        (Path(tmp) / "elsewhere").mkdir()
        for rel, content in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
        before = _snapshot(root)
        res = neardup.ScanResult.from_dict(_relative_results(root, groups))
        try:
            os.chdir(apply_in if apply_in == "/" else Path(tmp) / apply_in)
            rep = actions.apply(actions.plan(res).steps, action=action, to=Path(tmp) / "q",
                                manifest=Path(tmp) / "m.jsonl", dry_run=False)
            assert not rep.skipped
            assert len(rep.done) == sum(len(g) - 1 for g in groups)  # it acted, on the scan's files
            os.chdir(undo_in if undo_in == "/" else Path(tmp) / undo_in)
            back = actions.undo(Path(tmp) / "m.jsonl")
            assert not back.skipped and sorted(back.done) == sorted(rep.done)
        finally:
            os.chdir(here)
        assert _snapshot(root) == before


def _folder(tmp: Path) -> Path:
    photos = tmp / "photos"
    photos.mkdir()
    for p in PHOTOS[:2]:
        im = load_rgb(p)
        (photos / f"{p.stem}.png").write_bytes(encode(im, "PNG"))
        (photos / f"{p.stem} small.jpg").write_bytes(encode(im.resize((im.width // 2, im.height // 2)), quality=80))
    return photos


def test_cli_scan_a_relative_path_apply_there_undo_from_elsewhere(tmp_path):
    photos = _folder(tmp_path)
    before = _snapshot(photos)
    scan = _neardup("scan", "photos", "-o", "results.json", "--no-cache", "-q", cwd=tmp_path)
    assert scan.returncode == 0, scan.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["scan"]["cwd"] == str(tmp_path) and not os.path.isabs(data["groups"][0]["keep"])
    done = _neardup("apply", "results.json", "--action", "quarantine", "--to", "q", "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 file(s) acted on" in done.stdout
    manifest = done.stdout.split("manifest: ")[1].split()[0]
    assert os.path.isabs(manifest)
    back = _neardup("undo", manifest, cwd=Path("/"))
    assert back.returncode == 0 and "2 restored, 0 not restored" in back.stdout, back.stdout + back.stderr
    assert _snapshot(photos) == before


def test_apply_from_another_folder_acts_on_the_scanned_files(tmp_path):
    photos = _folder(tmp_path)
    assert _neardup("scan", "photos", "-o", "results.json", "--no-cache", "-q", cwd=tmp_path).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    dry = _neardup("apply", str(tmp_path / "results.json"), "--action", "quarantine", "--to", "q", cwd=other)
    assert dry.returncode == 0 and f"would move to quarantine: {photos}/" in dry.stdout, dry.stdout + dry.stderr


def test_results_whose_files_are_gone_say_where_relative_paths_point(tmp_path):
    _folder(tmp_path)
    assert _neardup("scan", "photos", "-o", "results.json", "--no-cache", "-q", cwd=tmp_path).returncode == 0
    os.rename(tmp_path / "photos", tmp_path / "moved")
    r = _neardup("apply", "results.json", "--action", "quarantine", "--to", "q", cwd=tmp_path)
    assert r.returncode == 2 and "relative to the folder the scan ran in" in r.stderr and str(tmp_path) in r.stderr


def _as_old_manifest(manifest: Path, base: Path) -> None:
    """Rewrite a manifest as neardup-manifest/1 wrote it: paths relative to apply's folder, no cwd."""
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    for r in lines:
        if r["kind"] == "header":
            r["format"] = "neardup-manifest/1"
            r.pop("cwd", None)
        for k in ("path", "keeper"):
            if r.get(k):
                r[k] = os.path.relpath(r[k], base)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))


def _applied_as_old(tmp: Path, *action: str) -> Path:
    """Scan ``tmp/photos`` by a relative path, apply ``action`` there, and rewrite its manifest
    as an older neardup wrote it; returns the manifest."""
    assert _neardup("scan", "photos", "-o", "results.json", "--no-cache", "-q", cwd=tmp).returncode == 0
    m = tmp / "m.jsonl"
    done = _neardup("apply", "results.json", *action, "--manifest", str(m), "--yes", cwd=tmp)
    assert done.returncode == 0, done.stderr
    _as_old_manifest(m, tmp)
    return m


def test_an_old_manifest_with_relative_paths_is_undone_from_anywhere(tmp_path):
    photos = _folder(tmp_path)
    before = _snapshot(photos)
    m = _applied_as_old(tmp_path, "--action", "quarantine", "--to", "q")
    back = _neardup("undo", str(m), cwd=Path("/"))
    assert back.returncode == 0 and "2 restored" in back.stdout, back.stdout + back.stderr
    assert _snapshot(photos) == before


def test_an_old_manifest_that_names_no_folder_is_refused_not_guessed(tmp_path):
    photos = _folder(tmp_path)
    m = _applied_as_old(tmp_path, "--action", "delete")
    left = _snapshot(photos)
    back = _neardup("undo", str(m), cwd=Path("/"))
    assert back.returncode == 2 and "older neardup" in back.stderr and "cd to that folder" in back.stderr
    assert _snapshot(photos) == left


# -- flags and files checked before any work --------------------------------------------
def test_apply_rejects_a_file_that_is_not_results_like_report_does(tmp_path):
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"hello": 1}))
    for cmd in (["apply", str(bogus), "--action", "quarantine", "--to", str(tmp_path / "q")], ["report", str(bogus), "-o", str(tmp_path / "r.html")]):
        r = _neardup(*cmd)
        assert r.returncode == 2 and "results" in r.stderr and "Traceback" not in r.stderr, (cmd, r.stderr)


@pytest.mark.parametrize("out", ["/proc/neardup-results.json", "missing/folder/results.json"])
def test_an_unwritable_output_fails_before_the_scan(tmp_path, out):
    photos = _folder(tmp_path)
    r = _neardup("scan", str(photos), "-o", out, "--cache", str(tmp_path / "cache"), cwd=tmp_path)
    assert r.returncode == 2 and "-o" in r.stderr, r.stderr
    assert not (tmp_path / "cache").exists()  # nothing was read or cached


def test_a_folder_without_images_says_so_and_why(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "data.csv").write_text("a,b")
    r = _neardup("scan", str(tmp_path), "-o", str(tmp_path / "r.json"), "--no-cache", "-q")
    assert "no image found" in r.stderr and "2 file(s) skipped as not images" in r.stderr, r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _neardup("scan", str(empty), "-o", str(tmp_path / "r2.json"), "--no-cache", "-q")
    assert "holds no files" in r.stderr, r.stderr


def test_a_rerun_from_the_cache_does_not_say_no_image_was_found(tmp_path):
    photos = _folder(tmp_path)
    for out in ("r1.json", "r2.json"):  # the second reads no file: every image comes from the cache
        r = _neardup("scan", str(photos), "-o", str(tmp_path / out), "--cache", str(tmp_path / "cache"), "-q")
        assert r.returncode == 0 and "no image found" not in r.stderr, r.stderr
    assert json.loads((tmp_path / "r2.json").read_text())["stats"]["from_cache"] > 0


# -- the keeper of byte copies: the plain, older, first-named file -------------------------
@pytest.mark.parametrize(("name", "mark"), [
    ("x - Copy.jpg", "Copy"), ("x (1).jpg", "(1"), ("copy_of_x.jpg", "copy"), ("Copy of x.png", "Copy"),
    ("x-300x200.jpg", "300x200"), ("x copy 2.jpg", "copy 2"), ("x_edited.jpg", "edited"), ("x~.jpg", "~"),
])
def test_copy_mark_finds_what_copying_tools_write(name, mark):
    got = copy_mark(f"/some/folder/{name}")
    assert got is not None and mark.lower().strip("(") in got.lower()


@pytest.mark.parametrize("name", ["IMG_0001.jpg", "DSC01234.JPG", "copyright.jpg", "holiday 2019.png", "scope.jpg",
                                  "photocopy.jpg", "editor.png"])
def test_plain_names_carry_no_copy_mark(name):
    assert copy_mark(f"/a/{name}") is None


def test_byte_copies_keep_the_plain_older_file_and_say_why(tmp_path):
    data = (PHOTOS[-1]).read_bytes()
    (tmp_path / "a_exact").mkdir()
    copy, plain = tmp_path / "a_exact" / "rocket copy.jpg", tmp_path / "rocket.jpg"
    copy.write_bytes(data)  # listed first, named as a copy
    plain.write_bytes(data)
    os.utime(plain, ns=(1_600_000_000 * 10**9,) * 2)
    os.utime(copy, ns=(1_700_000_000 * 10**9,) * 2)
    g = neardup.scan([str(tmp_path)], cache=None).groups
    assert len(g) == 1 and g[0].keep == str(plain), g
    assert "copy" in g[0].reason
    copy.rename(tmp_path / "a_exact" / "rocket2.jpg")  # no name tells them apart now: the older file stays
    os.utime(tmp_path / "a_exact" / "rocket2.jpg", ns=(1_700_000_000 * 10**9,) * 2)
    g = neardup.scan([str(tmp_path)], cache=None).groups
    assert g[0].keep == str(plain) and "older" in g[0].reason, g[0].reason


# -- lineage: a re-save is not better than what it was made from ----------------------------
def _decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def _keeper(tmp: Path, files: dict[str, bytes], *, same_age: bool = False) -> neardup.Group:
    """The one group of ``files``, written a second apart in order (or all at one instant)."""
    for i, (name, data) in enumerate(files.items()):
        (tmp / name).write_bytes(data)
        os.utime(tmp / name, ns=((1_600_000_000 + (0 if same_age else i)) * 10**9,) * 2)
    groups = neardup.scan([str(tmp)], cache=None).groups
    assert len(groups) == 1 and len(groups[0].members) == len(files), groups
    return groups[0]


LOSSLESS_SOURCES = [p for p in PHOTOS if p.suffix == ".png"]  # no JPEG history of their own


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_a_higher_quality_resave_does_not_beat_its_source(tmp_path, photo):
    q80 = encode(load_rgb(photo), quality=80)
    g = _keeper(tmp_path, {"z_original.jpg": q80, "a_resaved.jpg": encode(_decoded(q80), quality=90)})
    assert g.keep.endswith("z_original.jpg"), g.reason
    assert "re-saved" in g.reason


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("mirror", [False, True], ids=["same", "mirrored"])
def test_a_png_of_a_jpeg_does_not_beat_the_jpeg(tmp_path, photo, mirror):
    q80 = encode(load_rgb(photo), quality=80)
    png = _decoded(q80)
    g = _keeper(tmp_path, {"z.jpg": q80, "a.png": encode(ImageOps.mirror(png) if mirror else png, "PNG")})
    assert g.keep.endswith("z.jpg"), g.reason


@pytest.mark.parametrize("photo", LOSSLESS_SOURCES, ids=lambda p: p.stem)
def test_two_jpegs_of_one_lossless_source_keep_the_higher_quality(tmp_path, photo):
    """The null case: neither JPEG was made from the other, so no lineage claim may fire."""
    im = load_rgb(photo)
    # saved at one instant, age says nothing: the higher quality is kept
    g = _keeper(tmp_path, {"a80.jpg": encode(im, quality=80), "b88.jpg": encode(im, quality=88)}, same_age=True)
    assert g.keep.endswith("b88.jpg") and "re-saved" not in g.reason, g.reason
    (tmp_path / "c.png").write_bytes(encode(im, "PNG"))  # and the lossless source beats both, though younger
    g = neardup.scan([str(tmp_path)], cache=None).groups[0]
    assert g.keep.endswith("c.png") and len(g.members) == 3, g.reason


@pytest.mark.parametrize("photo", LOSSLESS_SOURCES, ids=lambda p: p.stem)
@pytest.mark.parametrize("edit", ["gamma", "saturation", "blur", "caption"])
def test_a_younger_edited_copy_at_a_higher_quality_is_not_kept(tmp_path, photo, edit):
    """A copy made later from the original, edited, and saved at a higher JPEG quality carries
    no trace of the original's quantisation; the original is older, and is kept for it."""
    from PIL import ImageDraw, ImageEnhance, ImageFilter

    src = encode(load_rgb(photo), quality=70)
    im = _decoded(src)
    if edit == "gamma":
        im = im.point(lambda v: int(255 * (v / 255) ** 0.8))
    elif edit == "saturation":
        im = ImageEnhance.Color(im).enhance(1.4)
    elif edit == "blur":
        im = im.filter(ImageFilter.GaussianBlur(0.8))
    else:
        ImageDraw.Draw(im).text((10, 10), "so true", fill=(255, 0, 0))
    g = _keeper(tmp_path, {"original.jpg": src, "edited.jpg": encode(im, quality=92)})
    assert g.keep.endswith("original.jpg") and ("oldest" in g.reason or "re-saved from it" in g.reason), g.reason
    if "re-saved from it" not in g.reason:  # the age was the evidence: without it, the encoding decides
        g = _keeper(tmp_path, {"original.jpg": src, "edited.jpg": encode(im, quality=92)}, same_age=True)
        assert g.keep.endswith("edited.jpg"), g.reason


def test_a_lossless_copy_and_a_jpeg_resave_of_one_jpeg_keep_the_lossless(tmp_path):
    """Siblings: both made from one JPEG the folder does not hold; the exact pixels win."""
    src = encode(load_rgb(LOSSLESS_SOURCES[0]), quality=80)
    g = _keeper(tmp_path, {"a.jpg": encode(_decoded(src), quality=85), "b.png": encode(_decoded(src), "PNG")})
    assert g.keep.endswith("b.png"), g.reason


def test_the_sample_keeps_its_originals(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_sample.py"), str(tmp_path)], check=True,
                   capture_output=True)
    res = neardup.scan([str(tmp_path / "photos")], cache=None)
    keep = {Path(g.keep).name for g in res.groups}
    for name in ("grace_hopper.jpg", "quokka.jpg", "rocket.jpg", "chelsea.png", "coffee.png"):
        assert name in keep, [(Path(g.keep).name, g.reason) for g in res.groups]


# -- progress with totals, a funnel that narrows --------------------------------------------
def test_progress_reports_totals_and_the_funnel_narrows(tmp_path):
    photos = _folder(tmp_path)
    (photos / "notes.txt").write_text("x")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    calls: list[tuple[str, int, int | None]] = []
    res = neardup.scan([str(photos)], cache=None, progress=lambda stage, adv, total: calls.append((stage, adv, total)))
    by_stage: dict[str, list[tuple[int, int | None]]] = {}
    for stage, adv, total in calls:
        by_stage.setdefault(stage, []).append((adv, total))
    assert sum(a for a, _ in by_stage["extract"]) == 5  # every image, the broken one too
    assert by_stage["extract"][-1][1] == 5  # the total, known by the end of the listing
    assert {t for _, t in by_stage["verify"]} == {res.stats["candidate_pairs"]}
    s = res.stats
    n = s["unique_contents"]
    assert 0 < s["candidate_pairs"] <= n * (n - 1) // 2
    f = s["funnel"]
    assert f["images"] >= f["read"] >= f["with_candidates"] >= f["verified"] >= f["in_groups"] > 0
    assert (f["images"], f["read"], f["in_groups"]) == (5, 4, 4)
    assert s["skipped_not_images"] == 1


# -- the review page says what it shows ----------------------------------------------------
def test_review_cards_show_size_format_and_a_legend(tmp_path, browser):
    photos = tmp_path / "photos"
    photos.mkdir()
    im = load_rgb(PHOTOS[0])
    (photos / "a.png").write_bytes(encode(im, "PNG"))
    (photos / "a_copy.png").write_bytes(encode(im, "PNG"))  # byte-identical
    im2 = load_rgb(PHOTOS[1])
    (photos / "b.png").write_bytes(encode(im2, "PNG"))
    (photos / "b small.jpg").write_bytes(encode(im2.resize((im2.width // 2, im2.height // 2)), quality=75))
    res, html = tmp_path / "results.json", tmp_path / "review.html"
    assert _neardup("scan", str(photos), "-o", str(res), "--no-cache", "-q").returncode == 0
    assert _neardup("report", str(res), "-o", str(html)).returncode == 0
    ctx, page, log = _open(browser, html)
    try:
        facts = page.locator(".card .facts").all_inner_texts()
        assert len(facts) == 4 and all("×" in t or "x" in t for t in facts), facts
        assert any("PNG" in t for t in facts) and any("JPEG" in t for t in facts)
        assert all(t.split(" · ")[1].endswith(("KiB", "MiB", " B")) for t in facts), facts
        assert "conf" in page.locator("#legend").inner_text().lower()
        heads = page.locator(".ghead").all_inner_texts()
        conf = {("byte-identical" in h): float(h.split("confidence ")[1].split()[0]) for h in heads}
        assert conf[True] >= conf[False], heads
        assert not log["errors"], log
    finally:
        ctx.close()


def test_load_results_is_public_and_reads_back_what_scan_wrote(tmp_path):
    res = neardup.scan([str(_folder(tmp_path))], cache=None)
    out = tmp_path / "results.json"
    out.write_text(res.to_json())
    assert neardup.load_results(out).to_dict() == json.loads(out.read_text())
    (tmp_path / "bogus.json").write_text("[1, 2]")
    with pytest.raises(neardup.UsageError, match="results"):
        neardup.load_results(tmp_path / "bogus.json")
