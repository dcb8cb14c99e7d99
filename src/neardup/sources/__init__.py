"""Sources of images: local folders (cloud sources implement the same iterator)."""

from .local import FileEntry, ScanProblem, walk

__all__ = ["FileEntry", "ScanProblem", "walk"]
