"""Every option of a scan, its default, and its valid range, checked once (:meth:`ScanOptions.check`).

The CLI's flags carry these defaults; the library's stages read them from the options they are
given, never from constants of their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from .errors import UsageError

__all__ = ["ScanOptions", "Progress", "MAX_PIXELS", "HASH_THRESHOLD", "CROP_NCC", "KNN_THRESHOLD", "IMAGENET_MEAN",
           "IMAGENET_STD", "DEFAULT_KINDS"]

#: images above this many pixels are refused before decoding (a decompression bomb guard)
MAX_PIXELS = 200_000_000
#: ImageNet normalisation, the default for --model (embed.model uses the same; kept here so a
#: fast scan does not import the embedding code)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: largest 256-bit hash distance accepted as a duplicate (docs/benchmarks.md: how it was chosen)
HASH_THRESHOLD = 40
#: crop test: layout correlation from which a pair is a crop of the other (the lowest bar no
#: unrelated pair of eval/crops.py passes, with the frame guard; docs/benchmarks.md)
CROP_NCC = 0.95
#: thorough mode: embedding cosine at which a pair is worth verifying
KNN_THRESHOLD = 0.70

#: what ``apply`` acts on unless told otherwise (--kinds): copies only, so another shot of a
#: burst or a slide that shows a photo is never removed by accident
DEFAULT_KINDS = ("copy",)

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, advance, total)``: called as work completes; the CLI draws bars with it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOptions:
    radius: int = 8
    hash_threshold: int = HASH_THRESHOLD
    crop_ncc: float = CROP_NCC
    workers: int = 0  # 0: one per core
    max_pixels: int = MAX_PIXELS
    batch: int = 512
    mode: str = "fast"  # "fast": hashes only; "thorough": + CNN embeddings and local features
    model: str | None = None  # thorough: an ONNX model file instead of EfficientNet-Lite0
    model_size: int = 224
    model_mean: tuple[float, float, float] = IMAGENET_MEAN
    model_std: tuple[float, float, float] = IMAGENET_STD
    knn_threshold: float = KNN_THRESHOLD  # thorough: cosine at which an embedding pair gets verified
    similar: bool = False  # thorough: also group other shots of the same scene or object
    retries: int = 5  # cloud sources: retries of a transient fault, per read or listing page
    time_budget: float = 120.0  # seconds one image may take in a worker process (0: no limit)
    worker_memory: int = 0  # MB of address space per worker process (0: no limit)
    executor: str = "local"  # "local": a process pool here; "dask": tasks on a Dask cluster
    scheduler: str | None = None  # dask: tcp://HOST:8786; None starts a local cluster of processes
    #: folders or URLs scanned with the others whose files are always kept and never acted on
    reference: tuple[str, ...] = ()
    include_reference_groups: bool = False  # also report groups made only of reference files

    @property
    def worker_count(self) -> int:
        """Worker processes (and verification threads) to use: ``workers``, or one per core."""
        return self.workers or (os.cpu_count() or 1)

    def with_overrides(self, **overrides: object) -> ScanOptions:
        """These options with single fields replaced; an unknown name is a usage error."""
        if not overrides:
            return self
        unknown = set(overrides) - set(self.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown scan option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(self.__dataclass_fields__)}")
        return replace(self, **overrides)  # type: ignore[arg-type]

    def check(self) -> None:
        self._check_mode()
        self._check_ranges()
        if self.include_reference_groups and not self.reference:
            raise UsageError("--include-reference-groups only applies with --reference ROOT; add one")

    def _check_mode(self) -> None:
        if self.mode not in ("fast", "thorough"):
            raise UsageError(f"--mode must be 'fast' or 'thorough', got {self.mode!r}")
        if self.model is not None and self.mode != "thorough":
            raise UsageError("--model only applies with --mode thorough; add --mode thorough")
        if self.similar and self.mode != "thorough":
            raise UsageError("--similar needs the embeddings of --mode thorough; add --mode thorough")
        if not 0.0 < self.knn_threshold < 1.0:
            raise UsageError(f"the embedding threshold must be in (0, 1), got {self.knn_threshold}")
        if self.executor not in ("local", "dask"):
            raise UsageError(f"--executor must be 'local' or 'dask', got {self.executor!r}")
        if self.scheduler is not None and self.executor != "dask":
            raise UsageError("--scheduler only applies with --executor dask; add --executor dask")

    def _check_ranges(self) -> None:
        if not 0 <= self.radius <= 16:
            raise UsageError(f"--radius must be between 0 and 16 bits of 64, got {self.radius}")
        if not 0 <= self.hash_threshold <= 96:
            raise UsageError(f"--threshold must be between 0 and 96 bits of 256, got {self.hash_threshold}")
        if not 0.0 < self.crop_ncc <= 1.0:
            raise UsageError(f"crop correlation must be in (0, 1], got {self.crop_ncc}")
        if self.workers < 0:
            raise UsageError(f"--workers must be 0 (one per core) or more, got {self.workers}")
        if self.time_budget < 0:
            raise UsageError(f"--time-budget must be 0 (none) or a number of seconds, got {self.time_budget}")
        if self.worker_memory < 0 or 0 < self.worker_memory < 256:
            raise UsageError(f"--worker-memory must be 0 (none) or at least 256 MB, got {self.worker_memory}")
        if self.retries < 0:
            raise UsageError(f"--retries must be 0 or more, got {self.retries}")
        if self.max_pixels < 1:
            raise UsageError(f"--max-pixels must be positive, got {self.max_pixels}")
