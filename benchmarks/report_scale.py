"""How the review page copes with many groups: write time, page size, load and interaction times.

    python3 benchmarks/report_scale.py [--groups 100000]

Synthesises a results.json with N groups of 2-4 members (paths that do not exist, so every
thumbnail is a placeholder: this measures the page, not the thumbnailer), writes the page, opens
it in the system Chromium (playwright) and times: load until the first page is drawn, the next
page (key ``n``), the stage filter over all groups, and a keep/remove flip.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from neardup.report import write_report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=100_000)
    a = ap.parse_args()
    rng = random.Random(7)
    groups = []
    for i in range(a.groups):
        k = rng.choice([2, 2, 2, 3, 4])
        ms = [f"/archive/{i // 1000:03d}/img_{i:06d}_{j}.jpg" for j in range(k)]
        pairs = [{"a": ms[0], "b": m, "stage": rng.choice(["exact", "hash", "hash", "crop"]),
                  "distance": rng.randrange(0, 40)} for m in ms[1:]]
        groups.append({"keep": ms[0], "members": ms, "reason": "best quality score: lossless",
                       "pairs": pairs, "digests": {m: f"{i:024x}{j:08x}" for j, m in enumerate(ms)}})
    stats = {"images": sum(len(g["members"]) for g in groups), "unique_contents": 0, "groups": len(groups),
             "candidate_pairs": 3 * len(groups), "verified_pairs": sum(len(g["pairs"]) for g in groups)}
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        res, page_path = Path(tmp) / "results.json", Path(tmp) / "review.html"
        res.write_text(json.dumps({"groups": groups, "failures": [], "stats": stats}))
        t = time.perf_counter()
        write_report(res, page_path, workers=1)
        t_write = time.perf_counter() - t
        size = page_path.stat().st_size
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium") or "chromium", args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            t = time.perf_counter()
            page.goto(page_path.as_uri())
            page.wait_for_selector(".card")
            t_load = time.perf_counter() - t
            t = time.perf_counter()
            page.keyboard.press("n")
            page.wait_for_function("document.getElementById('pageinfo').textContent.startsWith('page 2')")
            t_next = time.perf_counter() - t
            t = time.perf_counter()
            page.select_option("#f-stage", "crop")
            page.wait_for_function(f"!document.getElementById('pageinfo').textContent.includes('({len(groups)} groups)')")
            t_filter = time.perf_counter() - t
            t = time.perf_counter()
            page.locator(".card").nth(1).locator("button[data-act=flip]").click()
            page.wait_for_function("document.getElementById('s-flips').textContent === '1'")
            t_flip = time.perf_counter() - t
            b.close()
    print(f"{len(groups):,} groups, {stats['images']:,} pictures: page written in {t_write:.1f} s "
          f"({size / 1e6:.1f} MB); Chromium: first page drawn {t_load:.2f} s after navigation, next page "
          f"{t_next * 1000:.0f} ms, stage filter over all groups {t_filter * 1000:.0f} ms, a flip {t_flip * 1000:.0f} ms")


if __name__ == "__main__":
    main()
