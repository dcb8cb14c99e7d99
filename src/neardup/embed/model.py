"""Global CNN embeddings on ONNX Runtime: any ONNX image model, L2-normalised, float16.

The default is EfficientNet-Lite0 with ImageNet weights, exported once (see
:mod:`neardup.embed.export`) into the cache folder under a name that carries its digest.  A
user model (``--model PATH``) is described by a :class:`ModelSpec`: input side and
normalisation.  Outputs of rank 4 are average-pooled, rank 3 (transformer tokens) take the
first (class) token, rank 2 are used as they are.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..config import IMAGENET_MEAN, IMAGENET_STD, ScanOptions
from ..errors import UsageError
from ..store import default_cache_dir

__all__ = ["ModelSpec", "Embedder", "default_model_spec", "scan_model", "IMAGENET_MEAN", "IMAGENET_STD"]

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


def default_model_spec(cache_dir: str | os.PathLike[str] | None) -> ModelSpec:
    """EfficientNet-Lite0 from ``cache_dir/models``, exported there on first use."""

    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "models"
    target = folder / f"{DEFAULT_NAME}-gem3.onnx"
    if not target.is_file():
        from .export import export_lite0  # noqa: PLC0415 - PyTorch (the [export] extra) only to export the default model once
        export_lite0(target)
    return ModelSpec.from_file(target, name=DEFAULT_NAME)


def _rgb_input(rgb: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(im, dtype=np.float32)


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
        so.enable_cpu_mem_arena = False  # the arena keeps the peak of every batch shape
        try:
            self.session = ort.InferenceSession(spec.path, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for bad files
            raise UsageError(f"--model {spec.path} does not load in ONNX Runtime ({e}); pass an ONNX image model") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.spec = spec
        self._mean = np.asarray(spec.mean, np.float32) * 255.0
        self._std = np.asarray(spec.std, np.float32) * 255.0

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, d) float16, L2-normalised, for uint8 RGB arrays of any size."""
        if not images:
            return np.zeros((0, 0), np.float16)
        s = self.spec.input_size
        x = np.stack([_rgb_input(im, s) for im in images])
        x = ((x - self._mean) / self._std).transpose(0, 3, 1, 2)
        out = np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})[0])
        if out.ndim == 4:
            out = out.mean(axis=(2, 3))
        elif out.ndim == 3:
            out = out[:, 0]
        out = out.reshape(len(images), -1).astype(np.float32)
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
