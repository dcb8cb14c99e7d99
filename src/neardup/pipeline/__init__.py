"""The scan pipeline: ``run.scan`` runs the stages in order (docs/architecture.md)."""

from ..config import ScanOptions
from ..results import Failure, Group, Pair, ScanResult, load_results
from .run import scan

__all__ = ["Failure", "Group", "Pair", "ScanOptions", "ScanResult", "load_results", "scan"]
