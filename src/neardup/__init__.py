"""neardup: find exact and near-duplicate images and say which copy to keep.

>>> import neardup
>>> result = neardup.scan(["photos/"], cache=None)      # doctest: +SKIP
>>> for g in result.groups: print(g.keep, g.members)   # doctest: +SKIP

The scan machinery is imported on first use, so ``import neardup`` (and the command line's
start) costs only what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import CacheError, DecodeError, NeardupError, SourceError, UsageError

if TYPE_CHECKING:
    from .index import Index
    from .pipeline import Failure, Group, Pair, ScanOptions, ScanResult, load_results, scan

from .version import __version__

__all__ = [
    "scan", "Index", "load_results", "ScanOptions", "ScanResult", "Group", "Pair", "Failure",
    "NeardupError", "UsageError", "SourceError", "DecodeError", "CacheError", "__version__",
]

_LAZY = {"scan", "load_results", "ScanOptions", "ScanResult", "Group", "Pair", "Failure"}


def __getattr__(name: str) -> Any:
    if name == "Index":
        from .index import Index  # noqa: PLC0415 - loads on first use, like the scan

        return Index
    if name in _LAZY:
        from . import pipeline  # noqa: PLC0415 - import neardup stays cheap: the scan machinery loads on first use
        return getattr(pipeline, name)
    raise AttributeError(f"module 'neardup' has no attribute {name!r}")
