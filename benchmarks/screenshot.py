"""Screenshot of the review page at 1,400 px wide, for docs/report.png.

    python3 benchmarks/screenshot.py [--out docs/report.png]

Makes the sample (benchmarks/make_sample.py), scans it, writes the page, and photographs it in
the system Chromium through playwright, as the tests do.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "report.png")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run([sys.executable, str(Path(__file__).with_name("make_sample.py")), str(t / "sample")], check=True,
                       capture_output=True)
        subprocess.run([sys.executable, "-m", "neardup", "scan", str(t / "sample" / "photos"), "-o", str(t / "results.json"),
                        "--no-cache", "-q"], check=False)
        subprocess.run([sys.executable, "-m", "neardup", "report", str(t / "results.json"), "-o", str(t / "report.html")],
                       check=True)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium") or "chromium", args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1400, "height": 1100})
            page.goto((t / "report.html").as_uri())
            page.wait_for_selector(".card img")
            page.locator(".group").nth(0).locator(".card").nth(2).locator("button[data-act=notdup]").click()
            page.screenshot(path=str(a.out))
            b.close()
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
