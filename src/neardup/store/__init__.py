"""Persistent storage: the feature cache (SQLite), split by concern.  SQL lives only here."""

from .cache import FeatureCache
from .features import EmbeddingRow, FeatureReader, FileRecord, FileRow, KnownBatch
from .memo import CropRow, DetailRow, LineageRow, LocalRow
from .run import RunFile, RunRow
from .schema import SCHEMA_VERSION, default_cache_dir

__all__ = ["FeatureCache", "FeatureReader", "FileRecord", "FileRow", "EmbeddingRow", "KnownBatch", "RunFile", "RunRow",
           "CropRow", "DetailRow", "LineageRow", "LocalRow", "SCHEMA_VERSION", "default_cache_dir"]
