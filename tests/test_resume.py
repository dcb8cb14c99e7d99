"""A scan killed with SIGKILL mid-extraction resumes from the cache with the same result."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import neardup
from neardup.store import FeatureCache

from .conftest import need_shared


def _done_rows(db: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return int(c.execute("SELECT count(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_after_rows", [1, 64, 128])
def test_kill_minus_nine_then_rerun_gives_the_same_result(tmp_path, kill_after_rows):
    photos = need_shared() / "photos" / "bsds500" / "train"
    cache = tmp_path / "cache"
    code = "import sys, neardup; neardup.scan([sys.argv[1]], cache=sys.argv[2], workers=2, batch=32)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(photos), str(cache)], start_new_session=True)
    db = str(cache / "features.sqlite")
    deadline = time.monotonic() + 120
    # wait on the cache itself, not on a clock: kill once some batches are committed
    while _done_rows(db) < kill_after_rows and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the scan finished before it could be killed; use more images"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = _done_rows(db)
    assert committed >= kill_after_rows

    with FeatureCache(cache) as c:
        assert c.integrity_ok()
    resumed = neardup.scan([str(photos)], cache=cache, workers=2)
    fresh = neardup.scan([str(photos)], cache=None, workers=2)
    assert [g.to_dict() for g in resumed.groups] == [g.to_dict() for g in fresh.groups]
    assert resumed.stats["from_cache"] >= committed  # finished work was reused
    assert resumed.stats["decoded"] == fresh.stats["decoded"] - committed
