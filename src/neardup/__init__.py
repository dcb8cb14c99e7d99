"""neardup: find exact and near-duplicate images and say which copy to keep.

>>> import neardup
>>> result = neardup.scan(["photos/"], cache=None)      # doctest: +SKIP
>>> for g in result.groups: print(g.keep, g.members)   # doctest: +SKIP
"""

from .errors import CacheError, DecodeError, NeardupError, SourceError, UsageError
from .pipeline import Failure, Group, Pair, ScanOptions, ScanResult, scan

__version__ = "0.1.0"

__all__ = [
    "scan", "ScanOptions", "ScanResult", "Group", "Pair", "Failure",
    "NeardupError", "UsageError", "SourceError", "DecodeError", "CacheError", "__version__",
]
