"""Reference roots, kinds of sameness and stacks, end to end through the CLI.

A reference root (``scan NEW --reference ARCHIVE``) is the user's master archive: its files are
always the keeper, never acted on (even when a decision file asks), and groups made only of its
files are not reported unless asked.  ``apply`` acts on copies only unless ``--kinds`` says
otherwise; ``--action stack`` writes the groups without moving anything, and undo removes that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import ImageOps

import neardup
from neardup import actions
from neardup.errors import UsageError
from neardup.results import Group, Pair, ScanResult

from .conftest import PHOTOS, encode, load_rgb
from .test_actions import _snapshot


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neardup", *args], capture_output=True, text=True, cwd=cwd)


def _collections(root: Path) -> tuple[Path, Path]:
    """An archive of modest masters and a folder of new uploads in which each picture is
    *better* by pixels and quality (an export from a raw, say): without --reference the new
    file would win the keeper contest.  The archive also holds two byte copies of a picture
    the new folder does not have (a group made only of reference files)."""
    archive, new = root / "archive", root / "new"
    (archive / "2019").mkdir(parents=True)
    new.mkdir()
    for p in PHOTOS[:3]:
        im = load_rgb(p)
        small = im.resize((im.width * 2 // 3, im.height * 2 // 3))
        (archive / "2019" / f"{p.stem}.jpg").write_bytes(encode(small, quality=70))
        (new / f"{p.stem}_export.jpg").write_bytes(encode(im, quality=95))
        (new / f"{p.stem}_mirror.jpg").write_bytes(encode(ImageOps.mirror(im), quality=90))
    lone = load_rgb(PHOTOS[3])
    (archive / "lone.jpg").write_bytes(encode(lone, quality=90))
    (archive / "2019" / "lone copy.jpg").write_bytes((archive / "lone.jpg").read_bytes())
    # the archive's files are the younger ones (restored from a backup): age does not favour them
    for p in new.rglob("*.jpg"):
        os.utime(p, ns=(1_500_000_000 * 10**9,) * 2)
    for p in archive.rglob("*.jpg"):
        os.utime(p, ns=(1_700_000_000 * 10**9,) * 2)
    return archive, new


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    root = tmp_path_factory.mktemp("ref")
    archive, new = _collections(root)
    res = root / "results.json"
    run = _cli("scan", str(new), "--reference", str(archive), "-o", str(res), "--no-cache", "-q")
    assert run.returncode == 0, run.stderr
    return root, archive, new, json.loads(res.read_text())


def test_a_reference_file_is_always_the_keeper(scanned):
    root, archive, new, data = scanned
    groups = data["groups"]
    assert len(groups) == 3
    for g in groups:
        assert g["keep"].startswith(str(archive) + "/"), g
        assert g["reference"] == [g["keep"]]
        assert "reference" in g["reason"]
        assert len(g["members"]) == 3 and g["kind"] == "copy"
        assert all(p["kind"] == "copy" for p in g["pairs"])
    roots = {r["path"]: r.get("reference", False) for r in data["scan"]["roots"]}
    assert roots == {str(new): False, str(archive): True}


def test_without_reference_the_better_new_file_would_win(scanned, tmp_path):
    """The test above proves something: the same files scanned plainly keep the new export."""
    root, archive, new, _ = scanned
    plain = neardup.scan([str(new), str(archive)], cache=None, workers=2)
    keepers = {g.keep for g in plain.groups if len(g.members) == 3}
    assert keepers and all(k.startswith(str(new) + "/") for k in keepers)


def test_groups_of_reference_files_only_are_reported_only_when_asked(scanned, tmp_path):
    root, archive, new, data = scanned
    assert not any("lone" in m for g in data["groups"] for m in g["members"])
    res = tmp_path / "all.json"
    run = _cli("scan", str(new), "--reference", str(archive), "--include-reference-groups", "-o", str(res),
               "--no-cache", "-q")
    assert run.returncode == 0, run.stderr
    lone = [g for g in json.loads(res.read_text())["groups"] if any("lone" in m for m in g["members"])]
    assert len(lone) == 1 and sorted(lone[0]["reference"]) == sorted(lone[0]["members"])


def test_reference_members_are_never_moved_even_when_a_decision_asks(scanned, tmp_path):
    root, archive, new, data = scanned
    res = tmp_path / "results.json"
    res.write_text(json.dumps(data))
    g = data["groups"][0]
    other = next(m for m in g["members"] if m != g["keep"])
    # the person flips the reference keeper to "remove" and keeps a new file instead
    dec = tmp_path / "decisions.json"
    dec.write_text(json.dumps({"format": "neardup-decisions/1", "keep": [other], "remove": [g["keep"]]}))
    before = _snapshot(archive)
    q = tmp_path / "q"
    run = _cli("apply", str(res), "--decisions", str(dec), "--action", "quarantine", "--to", str(q), "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"refused {g['keep']}: under a --reference root" in run.stdout
    assert _snapshot(archive) == before
    moved = {str(p) for p in q.rglob("*.jpg")}
    assert moved and not any(str(archive) in m for m in moved)
    # a library caller is held to the same rule, from the roots the results record
    forged = ScanResult.from_dict({**data, "groups": [{**g, "reference": []} for g in data["groups"]]})
    assert not [s for s in actions.plan(forged).steps if s.path.startswith(str(archive) + "/")]


def test_a_root_given_both_ways_or_a_lone_flag_is_a_usage_error(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(UsageError, match="both to scan and as --reference"):
        neardup.scan([str(tmp_path / "a")], cache=None, reference=(str(tmp_path / "a"),))
    run = _cli("scan", str(tmp_path / "a"), "--include-reference-groups", "-o", str(tmp_path / "r.json"))
    assert run.returncode == 2 and "--reference" in run.stderr


def test_reference_blobs_keep_and_stay(tmp_path, monkeypatch):
    """The same rules with both roots in Azure Blob storage (Azurite)."""
    from .services import Azurite
    from .test_cloud import _container

    server = Azurite(tmp_path / "azurite")
    server.start()
    try:
        for k in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
        archive, new = _collections(tmp_path / "files")
        files = {f"master/{p.relative_to(archive)}": p.read_bytes() for p in archive.rglob("*.jpg")}
        files |= {f"uploads/{p.relative_to(new)}": p.read_bytes() for p in new.rglob("*.jpg")}
        cc = _container(server.connection_string, "lib", files)
        base = "az://lib/shoot/2024"
        res = tmp_path / "results.json"
        run = _cli("scan", f"{base}/uploads", "--reference", f"{base}/master", "-o", str(res), "--no-cache", "-q")
        assert run.returncode == 0, run.stderr
        groups = json.loads(res.read_text())["groups"]
        assert len(groups) == 3 and all(g["keep"].startswith(f"{base}/master/") for g in groups)

        def names() -> dict[str, bytes]:
            return {b.name: cc.download_blob(b.name).readall() for b in cc.list_blobs()}

        before = names()
        dec = tmp_path / "decisions.json"
        # every reference keeper marked for removal, a new file kept in its place
        keep = [next(m for m in g["members"] if m != g["keep"]) for g in groups]
        dec.write_text(json.dumps({"format": "neardup-decisions/1", "keep": keep, "remove": [g["keep"] for g in groups]}))
        # a blob action writes its manifest in the working folder: the test's, not the checkout
        run = _cli("apply", str(res), "--decisions", str(dec), "--action", "quarantine", "--to", "az://lib/q", "--yes",
                   cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        after = names()
        master = {k: v for k, v in before.items() if "/master/" in k}
        assert all(after.get(k) == v for k, v in master.items())
        assert any(k.startswith("q/") for k in after)
    finally:
        server.stop()


# -- kinds ----------------------------------------------------------------------------------
def _kinds_results(root: Path) -> tuple[Path, dict[str, str]]:
    """A group as a thorough ``--similar`` scan reports one: the keeper K, a copy C, another
    shot S, a copy of that shot SC (joined through S: another shot too), and a slide W that
    shows K inside a larger frame.  Real files, so apply can check their digests."""
    (root / "g").mkdir(parents=True)
    names = {"K": "k.jpg", "C": "c.jpg", "S": "s.jpg", "SC": "sc.jpg", "W": "w.jpg"}
    paths = {k: str(root / "g" / v) for k, v in names.items()}
    for i, p in enumerate(paths.values()):
        Path(p).write_bytes(encode(load_rgb(PHOTOS[i % len(PHOTOS)]).resize((64 + i, 48)), quality=90))
    digests = {p: actions.file_digest(p) for p in paths.values()}
    pairs = [Pair(paths["K"], paths["C"], "hash", 6), Pair(paths["K"], paths["S"], "similar", score=0.81),
             Pair(paths["S"], paths["SC"], "hash", 3),
             Pair(paths["K"], paths["W"], "contains", score=0.9, evidence={"container": paths["W"]})]
    g = Group(paths["K"], list(paths.values()), "test", pairs, digests)
    result = ScanResult([g], [], {"settings": {"digest": "sha256-128"}}, [], str(root))
    out = root / "results.json"
    out.write_text(result.to_json())
    return out, paths


def test_member_kinds_follow_the_loosest_pair_to_the_keeper(tmp_path):
    res, paths = _kinds_results(tmp_path)
    g = ScanResult.from_dict(json.loads(res.read_text())).groups[0]
    assert json.loads(res.read_text())["groups"][0]["kind"] == "similar"
    kinds = g.member_kinds()
    assert {k: kinds[p] for k, p in paths.items()} == {"K": "copy", "C": "copy", "S": "similar", "SC": "similar",
                                                        "W": "contains"}


@pytest.mark.parametrize(("kinds", "acted"), [(None, {"C"}), ("copy,similar", {"C", "S", "SC"}),
                                              ("copy,contains,similar", {"C", "S", "SC", "W"})])
def test_apply_acts_on_copies_unless_kinds_say_otherwise(tmp_path, kinds, acted):
    res, paths = _kinds_results(tmp_path)
    q = tmp_path / "q"
    run = _cli("apply", str(res), "--action", "quarantine", "--to", str(q), "--yes",
               *(["--kinds", kinds] if kinds else []))
    assert run.returncode == 0, run.stdout + run.stderr
    gone = {k for k, p in paths.items() if not Path(p).exists()}
    assert gone == acted
    if kinds is None:
        assert "left alone: 3 member(s) of kind contains, similar" in run.stdout


def test_a_bad_kind_says_which_are_valid(tmp_path):
    res, _ = _kinds_results(tmp_path)
    run = _cli("apply", str(res), "--action", "quarantine", "--to", str(tmp_path / "q"), "--kinds", "copies")
    assert run.returncode == 2 and "copy, contains, similar" in run.stderr


def test_a_person_s_explicit_remove_is_followed_whatever_the_kind(tmp_path):
    res, paths = _kinds_results(tmp_path)
    pl = actions.plan(json.loads(res.read_text()), {"remove": [paths["S"]]})
    assert {s.path for s in pl.steps} == {paths["C"], paths["S"]}


# -- stacks ---------------------------------------------------------------------------------
def test_stack_moves_nothing_writes_the_groups_and_undo_removes_them(tmp_path):
    res, paths = _kinds_results(tmp_path)
    before = _snapshot(tmp_path / "g")
    out = tmp_path / "stacks" / "stacks.json"
    run = _cli("apply", str(res), "--action", "stack", "--kinds", "copy,similar", "--to", str(out), "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert _snapshot(tmp_path / "g") == before
    body = json.loads(out.read_text())
    assert body["format"] == "neardup-stacks/1"
    (stack,) = body["stacks"]
    assert stack["keep"] == paths["K"] and stack["members"][0] == paths["K"]
    assert set(stack["members"]) == {paths[k] for k in ("K", "C", "S", "SC")} and stack["kind"] == "similar"
    manifest = run.stdout.split("undo: neardup undo ")[1].split(")")[0]
    again = _cli("apply", str(res), "--action", "stack", "--to", str(out), "--yes")
    assert again.returncode == 2 and "already exists" in again.stderr
    back = _cli("undo", manifest)
    assert back.returncode == 0, back.stdout + back.stderr
    assert not out.exists() and _snapshot(tmp_path / "g") == before


# -- the review page ------------------------------------------------------------------------
def test_review_page_marks_reference_members_and_filters_by_kind(scanned, browser, tmp_path):
    root, archive, new, data = scanned
    kinds_res, _ = _kinds_results(tmp_path / "kinds")
    both = tmp_path / "both.json"
    # the reference groups and the mixed-kind group on one page
    extra = json.loads(kinds_res.read_text())["groups"]
    both.write_text(json.dumps({**data, "groups": data["groups"] + extra}))
    html = tmp_path / "review.html"
    run = _cli("report", str(both), "-o", str(html))
    assert run.returncode == 0, run.stderr
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        page.goto(html.as_uri())
        page.wait_for_selector(".card")
        ref_cards = page.locator('.card[data-state="reference"]')
        assert ref_cards.count() == 3
        assert all(t.startswith("KEEP") for t in ref_cards.locator(".badge").all_inner_texts())
        assert ref_cards.locator("button").count() == 0  # nothing to flip: never acted on
        assert page.locator(".group").count() == 4
        page.select_option("#f-kind", "similar")
        assert page.locator(".group").count() == 1
        assert "another shot" in page.locator(".group").first.inner_text()
        page.select_option("#f-kind", "copy")
        assert page.locator(".group").count() == 3
    finally:
        ctx.close()
