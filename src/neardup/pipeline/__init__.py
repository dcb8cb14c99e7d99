"""The scan pipeline and its result types."""

from .result import Failure, Group, Pair, ScanResult, load_results
from .scan import ScanOptions, scan

__all__ = ["Failure", "Group", "Pair", "ScanOptions", "ScanResult", "load_results", "scan"]
