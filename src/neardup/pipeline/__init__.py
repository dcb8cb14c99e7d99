"""The scan pipeline and its result types."""

from .result import Failure, Group, Pair, ScanResult
from .scan import ScanOptions, scan

__all__ = ["Failure", "Group", "Pair", "ScanOptions", "ScanResult", "scan"]
