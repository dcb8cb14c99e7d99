"""Global CNN embeddings on ONNX Runtime: any ONNX image model, L2-normalised, float16.

The default is EfficientNet-Lite0 with ImageNet weights, exported once (see
:mod:`neardup.embed.export`) into the cache folder under a name that carries its digest.  A
user model (``--model PATH``) is described by a :class:`ModelSpec`: input side and
normalisation.  Outputs of rank 4 are average-pooled, rank 3 (transformer tokens) take the
first (class) token, rank 2 are used as they are.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..config import IMAGENET_MEAN, IMAGENET_STD, ScanOptions
from ..errors import UsageError
from ..store import default_cache_dir
from .regions import CONTAINED_SIDE, REGIONS_VERSION, pool_regions, quantise_regions

logger = logging.getLogger(__name__)

__all__ = ["ModelSpec", "Embedder", "Views", "default_model_spec", "scan_model", "IMAGENET_MEAN", "IMAGENET_STD"]

DEFAULT_NAME = "efficientnet-lite0"
#: what the model is shown: the working image, borders trimmed, upright, squashed to a square
EMBED_VIEW = "upright-trim-1"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """An ONNX image model and how to feed it; ``model_id`` keys its embeddings in the cache."""

    path: str
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    name: str = "user"
    digest: str = field(default="")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kw: Any) -> ModelSpec:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"--model {p}: no such file; pass the path of an ONNX model")
        if not 32 <= kw.get("input_size", 224) <= 1024:
            raise UsageError(f"--model-size must be between 32 and 1024 pixels, got {kw['input_size']}")
        return cls(path=str(p), digest=_sha256(p), **kw)

    @property
    def model_id(self) -> str:
        norm = ",".join(f"{v:g}" for v in (*self.mean, *self.std))
        return f"{self.name}:{self.digest[:16]}:{self.input_size}:{norm}:{EMBED_VIEW}"

    @property
    def contained_id(self) -> str:
        """Cache key of the contained views (embed/regions.py) by this model."""
        return f"{self.model_id}:{REGIONS_VERSION}:contained"

    @property
    def regions_id(self) -> str:
        """Cache key of the regional vectors (embed/regions.py) by this model."""
        return f"{self.model_id}:{REGIONS_VERSION}:regions"


@dataclass(frozen=True, slots=True)
class Views:
    """What the model says about a batch of images: the global embedding, and, for a model with
    a feature-map output, the contained view and the regions (embed/regions.py)."""

    global_: np.ndarray  # (n, d) float16, L2-normalised
    contained: np.ndarray | None = None  # (n, d) float16, L2-normalised
    regions: np.ndarray | None = None  # (n, R, d) uint8 (regions.quantise_regions)


def default_model_spec(cache_dir: str | os.PathLike[str] | None) -> ModelSpec:
    """EfficientNet-Lite0 from ``cache_dir/models``, exported there and quantised to int8 on
    first use (embed/quantise.py); the float model where the quantisation tools are missing."""

    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "models"
    target = folder / f"{DEFAULT_NAME}-gem3-map.onnx"
    int8 = folder / f"{DEFAULT_NAME}-gem3-map-int8.onnx"
    if not int8.is_file():
        if not target.is_file():
            from .export import export_lite0  # noqa: PLC0415 - PyTorch (the [export] extra) only to export the default model once
            export_lite0(target)
        from .quantise import quantise_default  # noqa: PLC0415 - ONNX Runtime's quantisation tools, once

        try:
            quantise_default(target, int8)
        except ImportError as e:
            logger.warning("thorough mode runs the float model: quantising it needs %s (pip install 'neardup[export]')",
                           e.name)
            return ModelSpec.from_file(target, name=DEFAULT_NAME)
    return ModelSpec.from_file(int8, name=f"{DEFAULT_NAME}-int8")


def _rgb_input(rgb: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(im, dtype=np.float32)


#: images a model runs on at once: one thread runs Lite0 faster an image in batches of 1-4 than
#: of 8-32 (the activations of a bigger batch leave the cache; benchmarks/thorough_parts.py,
#: docs/benchmarks.md "Thorough mode's speed")
EMBED_BATCH = 4


class Embedder:
    """An ONNX Runtime session for one :class:`ModelSpec` (one thread unless told otherwise)."""

    def __init__(self, spec: ModelSpec, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort  # noqa: PLC0415 - ONNX Runtime is the [cnn] extra
        except ImportError:
            raise UsageError("thorough mode needs ONNX Runtime: pip install 'neardup[cnn]'") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        # the arena keeps the peak of the largest batch shape, which EMBED_BATCH bounds; without
        # it every run's buffers fragmented the worker's heap (benchmarks/devset.py --mode
        # thorough prints the workers' peak)
        so.enable_cpu_mem_arena = True
        try:
            self.session = ort.InferenceSession(spec.path, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for bad files
            raise UsageError(f"--model {spec.path} does not load in ONNX Runtime ({e}); pass an ONNX image model") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.spec = spec
        outputs = self.session.get_outputs()
        # regional embeddings need the feature map and a model that takes any input side
        maps = [i for i, o in enumerate(outputs) if o.name == "map" and len(o.shape) == 4]
        self.map_output = maps[0] if maps and takes_any_side(inp.shape) else None
        self._mean = np.asarray(spec.mean, np.float32) * 255.0
        self._std = np.asarray(spec.std, np.float32) * 255.0

    @property
    def regional(self) -> bool:
        """Whether this model makes contained views and regions (the default model does)."""
        return self.map_output is not None

    def _run(self, images: list[np.ndarray], side: int) -> list[np.ndarray]:
        parts = [self._run_batch(images[s : s + EMBED_BATCH], side) for s in range(0, len(images), EMBED_BATCH)]
        return [np.concatenate(outs) for outs in zip(*parts)]

    def _run_batch(self, images: list[np.ndarray], side: int) -> list[np.ndarray]:
        x = np.stack([_rgb_input(im, side) for im in images])
        x = ((x - self._mean) / self._std).transpose(0, 3, 1, 2)
        return [np.asarray(o) for o in self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})]

    def embed_views(self, images: list[np.ndarray]) -> Views:
        """:func:`embed`, and for a regional model the contained views (a pass at
        CONTAINED_SIDE) and the quantised regions of the global pass's map."""
        if not images or self.map_output is None:
            return Views(self.embed(images))
        outs = self._run(images, self.spec.input_size)
        regions = quantise_regions(pool_regions(outs[self.map_output]))
        small = self._run(images, CONTAINED_SIDE)[0]
        return Views(_normalised(outs[0], len(images)), _normalised(small, len(images)), regions)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, d) float16, L2-normalised, for uint8 RGB arrays of any size."""
        if not images:
            return np.zeros((0, 0), np.float16)
        return _normalised(self._run(images, self.spec.input_size)[0], len(images))


def takes_any_side(shape: list[Any]) -> bool:
    """Whether an (n, c, h, w) input takes any h and w (symbolic or unknown dimensions)."""
    return len(shape) == 4 and not isinstance(shape[2], int) and not isinstance(shape[3], int)


def _normalised(out: np.ndarray, n: int) -> np.ndarray:
    """A model's output as (n, d) float16 unit vectors: rank 4 average-pooled, rank 3 (tokens)
    its first (class) token, rank 2 as it is."""
    if out.ndim == 4:
        out = out.mean(axis=(2, 3))
    elif out.ndim == 3:
        out = out[:, 0]
    out = out.reshape(n, -1).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-12
    return out.astype(np.float16)


def scan_model(opts: ScanOptions, cache_dir: str | os.PathLike[str] | None) -> ModelSpec:
    """The model of a thorough scan (``opts.model``, else the default exported into
    ``cache_dir``), loaded once here: a model that does not load is a clear error now, not a
    broken worker pool later."""
    import importlib.util  # noqa: PLC0415 - only a thorough scan asks

    missing = [m for m in ("onnxruntime", "faiss", "cv2") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--mode thorough needs {', '.join(missing)}: pip install 'neardup[cnn]' "
                         "(and 'neardup[export]' once, to export the default model)")
    if opts.model is not None:
        spec = ModelSpec.from_file(opts.model, input_size=opts.model_size, mean=opts.model_mean, std=opts.model_std)
    else:
        spec = default_model_spec(cache_dir)
    Embedder(spec)
    return spec
