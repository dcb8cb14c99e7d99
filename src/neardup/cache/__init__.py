"""Persistent feature cache."""

from .sqlite import FeatureCache, FileRecord, default_cache_dir

__all__ = ["FeatureCache", "FileRecord", "default_cache_dir"]
