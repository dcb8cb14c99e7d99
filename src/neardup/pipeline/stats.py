"""Per-stage wall time and peak memory, measured the same way in every run, and the stats a
scan reports."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..candidates.mih import COMPILED
from ..features.extract import DIGEST

if TYPE_CHECKING:
    from ..config import ScanOptions
    from ..records import SearchColumns
    from .grouping import Grouped
    from .ingest import Ingested
    from .search import Found
    from .thorough import Thorough

__all__ = ["StageClock", "scan_stats"]


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




def scan_stats(ingested: Ingested, cols: SearchColumns, found: Found, grouped: Grouped, thorough: Thorough | None,
               opts: ScanOptions, model_id: str | None, clock: StageClock) -> dict[str, Any]:
    """The result's ``stats``: what each stage counted, the funnel the review page draws, the
    settings that decide the result, and per-stage seconds and peak memory."""
    n = len(cols.digests)
    groups = grouped.groups
    return {
        "images": ingested.images,
        "read": ingested.read,
        "worker_restarts": ingested.restarts,
        "decoded": ingested.decoded,
        "from_cache": ingested.cached,
        "failed": len(ingested.failures),
        "unique_contents": n,
        "candidate_pairs": found.candidates,  # distinct pairs of contents the search put forward
        "candidate_hits": found.hits,  # what it found, counting a pair once per code that found it
        "searched_contents": found.searched,
        "reused_pairs": found.reused,
        **({"embedding_pairs": thorough.n_candidates, "contains_pairs": thorough.n_contains,
            "local_checks": thorough.n_local} if thorough else {}),
        "verified_pairs": grouped.verified_pairs,
        "detail_checks": grouped.measured,
        "reused_components": grouped.reused_components,  # groups taken as the last run made them
        "groups": len(groups),
        "duplicates": sum(len(g.members) - 1 for g in groups),
        "exact_copies": int(cols.counts.sum()) - n,  # files whose bytes another listed file has
        "skipped_not_images": ingested.tally.skipped,  # passed over by name (a known non-image extension)
        # images at each step, each a subset of the one before: what the review page draws
        "funnel": {"images": ingested.images,
                   "read": int(cols.counts.sum()),
                   "with_candidates": int(cols.counts[found.has_candidate | grouped.verified].sum()) if n else 0,
                   "verified": int(cols.counts[grouped.verified].sum()) if n else 0,
                   "in_groups": sum(len(g.members) for g in groups), "groups": len(groups)},
        "settings": {"mode": opts.mode, "digest": DIGEST, "radius": opts.radius, "hash_threshold": opts.hash_threshold,
                     "crop_ncc": opts.crop_ncc,
                     **({"model": model_id, "knn_threshold": opts.knn_threshold, "similar": opts.similar}
                        if model_id else {})},
        "stages": clock.stages,
        # the candidate search's inner loop: "compiled" (candidates/mih_loop.c) or "numpy" where
        # no C compiler was found at install (the same pairs, about 2x slower: the reason a scan is slow)
        "search_loop": "compiled" if COMPILED else "numpy",
    }
