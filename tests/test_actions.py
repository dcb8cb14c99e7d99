"""Safe actions: apply never removes the last copy, checks digests, and undo restores the tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ImageOps

import neardup
from neardup import actions

from .conftest import PHOTOS, encode, load_rgb


def _snapshot(root: Path) -> dict[str, tuple[bytes, bool, int, int]]:
    """Every entry under ``root``: bytes, is-a-link, mtime and mode: what "restored exactly" means."""
    out = {}
    for p in sorted(root.rglob("*")):
        st_ = p.lstat()
        if p.is_dir() and not p.is_symlink():
            out[str(p.relative_to(root)) + "/"] = (b"", False, 0, st_.st_mode)
        else:
            out[str(p.relative_to(root))] = (p.read_bytes() if not p.is_symlink() else os.readlink(p).encode(),
                                             p.is_symlink(), st_.st_mtime_ns, st_.st_mode)
    return out


class Crash(Exception):
    pass


@st.composite
def trees(draw):
    """Contents with 1-4 copies each, in nested folders; groups as a scan would report them."""
    n = draw(st.integers(1, 5))
    files: dict[str, bytes] = {}
    groups = []
    for c in range(n):
        k = draw(st.integers(1, 4))
        data = f"content {c} ".encode() * draw(st.integers(1, 50))
        names = [f"{draw(st.sampled_from(['a', 'b', 'a/x', 'c d']))}/f{c}_{i}.jpg" for i in range(k)]
        for nm in names:
            files[nm] = data
        if k > 1:
            groups.append(names)
    return files, groups


def _results(root: Path, groups: list[list[str]], keeper_index: list[int]) -> dict:
    out = []
    for g, ki in zip(groups, keeper_index):
        members = [str(root / m) for m in g]
        keep = members[ki % len(members)]
        out.append({"keep": keep, "members": [keep] + [m for m in members if m != keep], "reason": "",
                    "pairs": [], "digests": {m: actions.file_digest(m) for m in members}})
    return {"groups": out, "failures": [], "stats": {"settings": {"digest": actions.DIGEST}}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), data=st.data(), action=st.sampled_from(["quarantine", "hardlink", "symlink"]))
def test_apply_keeps_a_copy_of_everything_and_undo_restores_exactly(tree, data, action):
    files, groups = tree
    with tempfile.TemporaryDirectory() as tmp:
        root, q = Path(tmp) / "tree", Path(tmp) / "quarantine"
        for rel, content in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
        before = _snapshot(root)
        res = _results(root, groups, data.draw(st.lists(st.integers(0, 3), min_size=len(groups), max_size=len(groups))))
        every = [m for g in res["groups"] for m in g["members"]]
        decisions = {
            "keep": data.draw(st.lists(st.sampled_from(every), max_size=3)) if every else [],
            "remove": data.draw(st.lists(st.sampled_from(every), max_size=6)) if every else [],
            "not_duplicates": [list(p) for p in data.draw(st.lists(st.tuples(st.sampled_from(every), st.sampled_from(every)),
                                                                   max_size=2))] if every else [],
        }
        pl = actions.plan(res, decisions)
        crash_at = data.draw(st.one_of(st.none(), st.tuples(st.sampled_from(["intent", "moved"]),
                                                            st.integers(0, max(0, len(pl.steps) - 1)))))

        def crash(point: str, i: int) -> None:
            if (point, i) == crash_at:
                raise Crash

        manifest = Path(tmp) / "manifest.jsonl"
        try:
            rep = actions.apply(pl.steps, action=action, to=q, manifest=manifest, dry_run=False, crash=crash)
        except Crash:
            rep = None
        if rep is not None:
            assert not rep.skipped
            for g in res["groups"]:  # at least one real copy of every group is where it was
                assert any(os.path.isfile(m) and not os.path.islink(m) and actions.file_digest(m) == g["digests"][m]
                           for m in g["members"]), g
            for m in rep.done:  # and every path acted on still gives the same content
                if action != "quarantine":
                    assert actions.file_digest(m) == next(g["digests"][m] for g in res["groups"] if m in g["members"])
        if manifest.exists():
            back = actions.undo(manifest)
            assert not back.skipped
            assert actions.undo(manifest).done == []  # idempotent
        assert _snapshot(root) == before


def _scanned(tmp: Path) -> tuple[Path, Path]:
    root = tmp / "photos"
    root.mkdir()
    for p in PHOTOS[:3]:
        im = load_rgb(p)
        (root / f"{p.stem}.png").write_bytes(encode(im, "PNG"))
        (root / f"{p.stem} copy.jpg").write_bytes(encode(im.resize((im.width // 2, im.height // 2)), quality=85))
        (root / f"{p.stem}_mirror.jpg").write_bytes(encode(ImageOps.mirror(im), quality=90))
    out = tmp / "results.json"
    r = subprocess.run([sys.executable, "-m", "neardup", "scan", str(root), "-o", str(out), "--cache", str(tmp / "cache"),
                        "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return root, out


def _neardup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neardup", *args], capture_output=True, text=True)


def test_cli_apply_dry_run_then_quarantine_then_undo(tmp_path):
    root, res = _scanned(tmp_path)
    groups = json.loads(res.read_text())["groups"]
    assert len(groups) == 3 and all(len(g["members"]) == 3 and len(g["digests"]) == 3 for g in groups)
    before = _snapshot(root)
    q = tmp_path / "q"
    dry = _neardup("apply", str(res), "--action", "quarantine", "--to", str(q))
    assert dry.returncode == 0 and "would move to quarantine" in dry.stdout and "add --yes" in dry.stdout
    assert _snapshot(root) == before and not q.exists()
    # a duplicate edited after the scan is skipped, not moved
    edited = Path(groups[0]["members"][1])
    edited.write_bytes(edited.read_bytes() + b"\0")
    before = _snapshot(root)
    done = _neardup("apply", str(res), "--action", "quarantine", "--to", str(q), "--yes")
    assert done.returncode == 0, done.stderr
    assert f"skip {edited}: changed since the scan" in done.stdout
    assert sorted(p.name for p in root.iterdir()) == sorted([*(Path(g["keep"]).name for g in groups), edited.name])
    manifest = done.stdout.split("manifest: ")[1].split()[0]
    back = _neardup("undo", manifest)
    assert back.returncode == 0 and "5 restored, 0 not restored" in back.stdout
    assert _snapshot(root) == before


def test_changed_keeper_protects_its_duplicates(tmp_path):
    root, res = _scanned(tmp_path)
    data = json.loads(res.read_text())
    g = data["groups"][0]
    Path(g["keep"]).unlink()  # the keeper is gone: its duplicates may now be the last copies
    rep = actions.apply(actions.plan(data).steps, action="quarantine", to=tmp_path / "q", dry_run=False)
    assert {p for p, _ in rep.skipped} == set(g["members"][1:])
    assert all(Path(m).exists() for m in g["members"][1:])


def test_not_a_duplicate_is_remembered_by_later_scans(tmp_path):
    root, res = _scanned(tmp_path)
    g = json.loads(res.read_text())["groups"][0]
    a, b = g["keep"], g["members"][1]
    dec = tmp_path / "decisions.json"
    dec.write_text(json.dumps({"format": "neardup-decisions/1", "not_duplicates": [[a, b]]}))
    r = _neardup("apply", str(res), "--decisions", str(dec), "--action", "quarantine", "--to", str(tmp_path / "q"),
                 "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0 and "remembered 1" in r.stdout, r.stdout + r.stderr
    assert f"would move to quarantine: {b}" not in r.stdout
    again = neardup.scan([str(root)], cache=tmp_path / "cache")
    assert not any(a in grp.members and b in grp.members for grp in again.groups)


def test_plan_refuses_to_remove_every_copy():
    res = {"groups": [{"keep": "/x/a", "members": ["/x/a", "/x/b"], "digests": {"/x/a": "00", "/x/b": "00"}}],
           "stats": {}}
    pl = actions.plan(res, {"remove": ["/x/a", "/x/b"]})
    assert [s.path for s in pl.steps] == ["/x/b"] and pl.refused and pl.refused[0][0] == "/x/a"
    with pytest.raises(neardup.errors.UsageError, match="needs --to"):
        actions.apply([], action="quarantine", to=None, dry_run=False)


def test_quarantine_on_another_file_system_and_undo(tmp_path):
    """/dev/shm is another file system here (tmpfs): moves are copies there, then renames."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to move across")
    root, res = _scanned(tmp_path)
    before = _snapshot(root)
    data = json.loads(res.read_text())
    with tempfile.TemporaryDirectory(dir=shm) as q:
        rep = actions.apply(actions.plan(data).steps, action="quarantine", to=q, manifest=tmp_path / "m.jsonl",
                            dry_run=False)
        assert len(rep.done) == 6 and not rep.skipped
        assert not list(Path(q).rglob("*" + actions.PART))
        back = actions.undo(tmp_path / "m.jsonl")
        assert len(back.done) == 6 and not back.skipped
    assert _snapshot(root) == before


def test_results_and_manifests_of_an_older_digest_are_still_checked_with_it(tmp_path):
    # results.json and manifests written before the digest changed name none: they are BLAKE2b
    root = tmp_path / "t"
    (root / "a").mkdir(parents=True)
    for name in ("a/one.jpg", "a/two.jpg"):
        (root / name).write_bytes(b"same bytes" * 100)
    members = [str(root / "a/one.jpg"), str(root / "a/two.jpg")]
    old = {m: actions.file_digest(m, actions.LEGACY_DIGEST) for m in members}
    assert old[members[0]] != actions.file_digest(members[0])
    res = {"groups": [{"keep": members[0], "members": members, "digests": old}], "stats": {"settings": {}}}
    pl = actions.plan(res)
    assert pl.algo == actions.LEGACY_DIGEST
    rep = actions.apply(pl.steps, action="quarantine", to=tmp_path / "q", dry_run=False)
    assert rep.done == [members[1]] and not Path(members[1]).exists()
    manifest = Path(rep.manifest)
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    for rec in lines:
        rec.pop("algo", None)  # as an older version wrote it
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    back = actions.undo(manifest)
    assert back.done == [members[1]] and Path(members[1]).read_bytes() == b"same bytes" * 100


def test_not_a_duplicate_decisions_survive_the_digest_change(tmp_path):
    import sqlite3

    from neardup.store import FeatureCache

    root, res = _scanned(tmp_path)
    g = json.loads(res.read_text())["groups"][0]
    a, b = g["keep"], g["members"][1]
    cache = tmp_path / "cache"
    with FeatureCache(cache):
        pass
    # make it a cache of an older version: its file records and a decision hold BLAKE2b digests
    db = sqlite3.connect(cache / "features.sqlite")
    old = {p: bytes.fromhex(actions.file_digest(p, actions.LEGACY_DIGEST)) for p in (a, b)}
    for p, d in old.items():
        db.execute("UPDATE files SET digest=?, version='nd-features-9' WHERE path=?", (d, p))
    db.execute("DELETE FROM not_duplicates")
    db.execute("INSERT INTO not_duplicates VALUES (?, ?)", tuple(sorted(old.values())))
    db.execute("DELETE FROM meta WHERE key='digest'")
    db.commit()
    db.close()
    again = neardup.scan([str(root)], cache=cache)
    assert not any(a in grp.members and b in grp.members for grp in again.groups)
    assert any(a in grp.members for grp in again.groups)  # the rest of its group stands
