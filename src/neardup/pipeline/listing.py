"""The scan stage: the roots' files as one stream, and a count of them ahead of it.

The stream feeds extraction as it is listed (nothing waits for a million-file listing).  So
that a progress bar can show a total, a rate and an end while that happens, a second listing of
the same roots counts them in a background thread: listing is cheap beside reading and decoding
(a page of thousands of blobs per request, a ``stat`` per local file), and the count only runs
when someone is watching.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import NeardupError
from ..results import Failure
from ..sources import FileEntry, ScanProblem, folder_key, open_source, shown_name, utf8_name

__all__ = ["ListingTally", "list_entries", "ListingCounter", "skip_dirs_for"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ListingTally:
    """What the listing passed over: files skipped by their name (a known non-image extension)."""

    skipped: int = 0
    skipped_examples: list[str] | None = None

    def skip(self, path: str) -> None:
        self.skipped += 1
        if self.skipped_examples is None:
            self.skipped_examples = []
        if len(self.skipped_examples) < 3:
            self.skipped_examples.append(path)


def _overlap(paths: Sequence[str]) -> bool:
    """Whether one root lies inside (or is) another, so a file could be listed twice."""
    keys = []
    for p in paths:
        k = p.rstrip("/") if "://" in p else os.path.realpath(p)
        keys.append(k.rstrip("/") + "/")
    return any(i != j and b.startswith(a) for i, a in enumerate(keys) for j, b in enumerate(keys))


def skip_dirs_for(cache_file: str) -> frozenset[tuple[int, int]]:
    """The folders a scan must not list: its own cache's (the store, its log, the run snapshots
    and spilled columns), when the cache lies under a scanned root."""
    if cache_file == ":memory:":
        return frozenset()
    try:
        return frozenset({folder_key(os.path.dirname(os.path.abspath(cache_file)))})
    except OSError:
        return frozenset()


def _items(paths: Sequence[str], on_skip: Callable[[str], None] | None,
           skip_dirs: frozenset[tuple[int, int]] = frozenset()) -> Iterator[FileEntry | ScanProblem]:
    # roots that overlap would list some files twice: then, and only then, remember what was
    # listed (a set of paths costs memory a million-file scan of separate roots should not pay)
    seen: set[str] | None = set() if _overlap(paths) else None
    for root in paths:
        for item in open_source(str(root), skip_dirs=skip_dirs).entries(on_skip=on_skip):
            if seen is not None:
                key = item.path if "://" in item.path else os.path.realpath(item.path)
                if key in seen:
                    continue
                seen.add(key)
            yield item


def list_entries(paths: Sequence[str], failures: list[Failure], tally: ListingTally, *,
                 skip_dirs: frozenset[tuple[int, int]] = frozenset()) -> Iterator[FileEntry]:
    """Every file under ``paths`` once, in order, outside the folders ``skip_dirs``
    (:func:`skip_dirs_for`); problems go to ``failures``, files skipped by name to ``tally``.  A
    name that is not valid UTF-8 (``os.fsdecode`` kept its bytes as lone surrogates) is a failure
    too: the store and results.json cannot hold it as text."""
    for item in _items(paths, tally.skip, skip_dirs):
        if isinstance(item, ScanProblem):
            failures.append(Failure(item.path, "scan", item.error, item.reason))
        elif not utf8_name(item.path):  # reported as text results.json can hold
            failures.append(Failure(shown_name(item.path), "scan", "the file's name is not valid UTF-8 (its stray "
                                    "bytes are shown as \\xNN): rename it to scan it", "unencodable-name"))
        else:
            yield item


class ListingCounter:
    """Counts the files under ``paths`` in a daemon thread, telling ``progress("list", k, None)``
    as it goes; :attr:`total` is set once the count is complete (None until then, or if the
    listing failed: the scan itself then says why)."""

    def __init__(self, paths: Sequence[str], progress: Callable[[str, int, int | None], None], *,
                 skip_dirs: frozenset[tuple[int, int]] = frozenset()) -> None:
        self.total: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, args=(list(paths), progress, skip_dirs), daemon=True,
                                        name="neardup-count")
        self._thread.start()

    def _count(self, paths: list[str], progress: Callable[[str, int, int | None], None],
               skip_dirs: frozenset[tuple[int, int]]) -> None:
        n = step = 0
        try:
            for item in _items(paths, None, skip_dirs):
                if self._stop.is_set():
                    return
                if isinstance(item, FileEntry):
                    n += 1
                    step += 1
                    if step >= 256:
                        progress("list", step, None)
                        step = 0
        except (NeardupError, OSError) as e:  # the scan's own listing meets the same error and reports it
            log.debug("counting the files stopped: %s", e)
            return
        progress("list", step, n)
        self.total = n

    def close(self) -> None:
        self._stop.set()
