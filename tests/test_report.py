"""The review page in a real headless Chromium: renders, flips and exports decisions, runs no
injected script, makes no network request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import ImageOps

from .conftest import PHOTOS, encode, load_rgb

HOSTILE = ["<img src=x onerror=window.__pwned=1>.jpg", "<", "script><script>window.__pwned=2<", "script>.jpg"]


@pytest.fixture(scope="module")
def page_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    root = tmp / "photos"
    root.mkdir()
    for i, p in enumerate(PHOTOS[:3]):
        im = load_rgb(p)
        (root / f"{p.stem}.png").write_bytes(encode(im, "PNG"))
        (root / f"{p.stem} small.jpg").write_bytes(encode(im.resize((im.width // 2, im.height // 2)), quality=80))
        (root / f"{p.stem}_mirror.jpg").write_bytes(encode(ImageOps.mirror(im), quality=90))
        if i == 0:  # copies under hostile names
            (root / HOSTILE[0]).write_bytes(encode(im, quality=70))
            nested = root / HOSTILE[1] / HOSTILE[2]
            nested.mkdir(parents=True)
            (nested / HOSTILE[3]).write_bytes(encode(im, quality=75))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    res = tmp / "results.json"
    run = subprocess.run([sys.executable, "-m", "neardup", "scan", str(root), "-o", str(res), "--no-cache", "-q"],
                         capture_output=True, text=True)
    assert run.returncode == 3, run.stderr  # finished, with one failure (broken.jpg)
    html = tmp / "review.html"
    rep = subprocess.run([sys.executable, "-m", "neardup", "report", str(res), "-o", str(html)], capture_output=True,
                         text=True)
    assert rep.returncode == 0, rep.stderr
    return root, res, html


def _open(browser, html: Path):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    log = {"requests": [], "errors": [], "dialogs": []}
    page.on("request", lambda r: log["requests"].append(r.url))
    page.on("pageerror", lambda e: log["errors"].append(str(e)))
    page.on("console", lambda m: log["errors"].append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (log["dialogs"].append(d.message), d.dismiss()))
    page.goto(html.as_uri())
    page.wait_for_selector(".card")
    return ctx, page, log


def test_page_renders_groups_and_runs_nothing_injected(page_files, browser, tmp_path):
    root, res, html = page_files
    groups = json.loads(res.read_text())["groups"]
    ctx, page, log = _open(browser, html)
    try:
        assert page.locator(".group").count() == len(groups) == 3
        assert page.locator(".card").count() == sum(len(g["members"]) for g in groups)
        texts = page.locator(".card .path").all_inner_texts()
        assert any(HOSTILE[0] in t for t in texts)
        assert any("</script><script>window.__pwned=2</script>.jpg" in t for t in texts)
        assert page.evaluate("window.__pwned") is None
        assert not log["dialogs"] and not log["errors"], log
        # every image loaded from the folder beside the page, nothing from a network
        assert log["requests"] and all(u.startswith(("file:", "data:", "blob:")) for u in log["requests"]), log["requests"]
        assert page.locator(".card img").count() == page.locator(".card").count()
        assert "1 file(s) could not be read" in page.locator("#failures summary").inner_text()
        page.screenshot(path=str(tmp_path / "review-1400.png"))
        assert (tmp_path / "review-1400.png").stat().st_size > 20_000
    finally:
        ctx.close()


def test_toggles_and_export_give_the_decisions_apply_follows(page_files, browser, tmp_path):
    root, res, html = page_files
    data = json.loads(res.read_text())
    ctx, page, log = _open(browser, html)
    try:
        g0 = page.locator(".group").nth(0)
        cards = g0.locator(".card")
        keeper = cards.nth(0).get_attribute("data-path")
        kept = cards.nth(1).get_attribute("data-path")
        doubted = cards.nth(2).get_attribute("data-path")
        cards.nth(1).locator("button[data-act=flip]").click()  # a duplicate flipped to keep
        page.locator(".group").nth(0).locator(".card").nth(2).locator("button[data-act=notdup]").click()
        # keyboard, second group: the keeper alone cannot be flipped to remove (it is the last
        # copy kept); after another member is kept with space, it can
        def card(path: str):
            return page.locator(".card").filter(has=page.get_by_text(path, exact=True))

        g1_path = page.locator(".group").nth(1).locator(".card").nth(0).get_attribute("data-path")
        g1_other = page.locator(".group").nth(1).locator(".card").nth(1).get_attribute("data-path")
        card(g1_path).focus()
        page.keyboard.press(" ")
        assert card(g1_path).get_attribute("data-state") == "keep"
        card(g1_other).focus()
        page.keyboard.press(" ")
        card(g1_path).focus()
        page.keyboard.press(" ")
        assert card(g1_path).get_attribute("data-state") == "remove"
        assert card(g1_other).get_attribute("data-state") == "keep"
        with page.expect_download() as dl:
            page.keyboard.press("e")
        exported = json.loads(Path(dl.value.path()).read_text())
        assert exported == {"format": "neardup-decisions/1", "keep": sorted([kept, g1_other]), "remove": [g1_path],
                            "not_duplicates": [[keeper, doubted]]}
        assert json.loads(page.locator("#decisions").input_value()) == exported
        assert not log["errors"], log
    finally:
        ctx.close()
    dec = tmp_path / "decisions.json"
    dec.write_text(json.dumps(exported))
    from neardup import actions

    pl = actions.plan(data, actions.load_decisions(dec))
    acted = {s.path for s in pl.steps}
    assert kept not in acted and doubted not in acted and g1_path in acted and g1_other not in acted
    g1 = next(g for g in data["groups"] if g["keep"] == g1_path)
    assert any(m not in acted for m in g1["members"])  # its group still keeps a copy


def test_pages_and_filters(browser, tmp_path):
    """60 groups: three pages; n/p move between them; the stage filter narrows them."""
    groups = []
    for i in range(60):
        a, b = f"/nowhere/{i:02d}_a.jpg", f"/nowhere/{i:02d}_b.jpg"
        stage = "hash" if i % 3 else "exact"
        pair = {"a": a, "b": b, "stage": stage, **({"distance": i % 30} if stage == "hash" else {"distance": 0})}
        groups.append({"keep": a, "members": [a, b], "reason": "test", "pairs": [pair],
                       "digests": {a: f"{i:032x}", b: f"{i + 100:032x}"}})
    res = tmp_path / "results.json"
    res.write_text(json.dumps({"groups": groups, "failures": [], "stats": {"images": 120, "groups": 60}}))
    from neardup.report import write_report

    n = write_report(res, tmp_path / "r.html", workers=1)
    assert n["groups"] == 60 and n["thumbnail_failures"] == 120  # the files do not exist: placeholders
    ctx, page, log = _open(browser, tmp_path / "r.html")
    try:
        assert page.locator(".group").count() == 25
        assert "page 1 of 3" in page.locator("#pageinfo").inner_text()
        page.keyboard.press("n")
        assert "page 2 of 3" in page.locator("#pageinfo").inner_text()  # key handlers run synchronously
        page.select_option("#f-stage", "exact")
        assert "(20 groups)" in page.locator("#pageinfo").inner_text()
        from playwright.sync_api import expect

        expect(page.locator(".card .thumb").first).to_have_text("no preview")  # waits for the image's error event
    finally:
        ctx.close()


def test_a_crafted_results_file_writes_nothing_outside_the_thumbnail_folder(tmp_path):
    from neardup.report import write_report

    photo = tmp_path / "p.png"
    photo.write_bytes(PHOTOS[0].read_bytes())
    evil = {"groups": [{"keep": str(photo), "members": [str(photo), str(photo) + "x"], "reason": "", "pairs": [],
                        "digests": {str(photo): "../../escaped", str(photo) + "x": "0" * 32}}],
            "failures": [], "stats": {}}
    res = tmp_path / "sub" / "results.json"
    res.parent.mkdir()
    res.write_text(json.dumps(evil))
    write_report(res, tmp_path / "sub" / "page#1.html", workers=1)
    assert not list(tmp_path.glob("escaped*")) and not list(tmp_path.parent.glob("escaped*"))
    thumbs = list((tmp_path / "sub" / "page#1_files").iterdir())
    assert len(thumbs) == 1 and thumbs[0].suffix == ".jpg"
    assert "page%231_files/" in (tmp_path / "sub" / "page#1.html").read_text()
