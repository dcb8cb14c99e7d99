"""Per-stage wall time and peak memory, measured the same way in every run."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StageClock"]


def _reset_peak() -> bool:
    try:  # Linux: writing 5 resets VmHWM (the peak RSS) of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_self_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StageClock:
    """Collects ``{stage: {"seconds", "peak_rss_mb"}}``; worker peaks are added when known."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        _reset_peak()
        t = time.perf_counter()
        try:
            yield
        finally:
            entry = self.stages.setdefault(name, {"seconds": 0.0, "peak_rss_mb": 0.0})
            entry["seconds"] = round(entry["seconds"] + time.perf_counter() - t, 4)
            entry["peak_rss_mb"] = round(max(entry["peak_rss_mb"], _peak_self_mb()), 1)

    def split(self, name: str, part: str, seconds: float) -> None:
        """Move ``seconds`` of stage ``name`` to stage ``part`` that ran interleaved with it.

        Both report the same peak RSS: the memory was shared while they alternated.
        """
        entry = self.stages[name]
        entry["seconds"] = round(entry["seconds"] - seconds, 4)
        self.stages[part] = {"seconds": round(seconds, 4), "peak_rss_mb": entry["peak_rss_mb"]}

    def workers_peak(self, name: str) -> None:
        """Record the largest peak RSS of any finished worker process under stage ``name``."""
        mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        if name in self.stages and mb > 0:
            self.stages[name]["worker_peak_rss_mb"] = round(mb, 1)


