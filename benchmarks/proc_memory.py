"""This process's resident memory, for the benchmarks that report it (Linux ``/proc``)."""

from __future__ import annotations

from pathlib import Path


def rss_mb(field: str = "VmRSS") -> float:
    """The resident set size now, in MB (nan where ``/proc/self/status`` has none); ``field``
    ``"RssFile"``: only its file-backed pages (a file mapping's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")
