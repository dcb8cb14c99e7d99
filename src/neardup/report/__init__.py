"""The review page for a scan's results."""

from .html import write_report

__all__ = ["write_report"]
