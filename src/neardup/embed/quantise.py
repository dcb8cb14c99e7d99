"""int8 quantisation of the default model, once, after its export (docs/benchmarks.md, "Thorough
mode's speed": 1.7x faster on one core, the dev set's and the own population's results unchanged).

Static QDQ quantisation by ONNX Runtime: int8 weights per channel, uint8 activations whose
ranges are calibrated on the photos shipped in ``calibration/`` (CC0, 320 px), each shown as it
is, mirrored, cropped and in grey, at both sides the embedder uses.  Needs the ``onnx`` package
(the ``[export]`` extra, as the export itself does).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..config import IMAGENET_MEAN, IMAGENET_STD
from .regions import CONTAINED_SIDE

__all__ = ["quantise_default", "CALIBRATION"]

#: the calibration photos (package data)
CALIBRATION = Path(__file__).parent / "calibration"


def _views(side: int) -> Iterator[np.ndarray]:
    """Each calibration photo in four views, as the embedder feeds them (NCHW, normalised)."""
    mean = np.asarray(IMAGENET_MEAN, np.float32) * 255.0
    std = np.asarray(IMAGENET_STD, np.float32) * 255.0
    for p in sorted(CALIBRATION.glob("*.jpg")):
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        for view in (rgb, ImageOps.mirror(rgb), rgb.crop((w // 6, h // 6, w - w // 8, h - h // 8)),
                     ImageOps.grayscale(rgb).convert("RGB")):
            x = np.asarray(view.resize((side, side), Image.Resampling.BILINEAR), np.float32)
            yield np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1)[None])


def quantise_default(src: str | os.PathLike[str], dest: str | os.PathLike[str], *, input_size: int = 224) -> Path:
    """Write the int8 model of the float model ``src`` to ``dest`` (whole or not at all).
    Raises ImportError where ONNX Runtime's quantisation tools (the ``onnx`` package) are missing."""
    from onnxruntime.quantization import (  # noqa: PLC0415 - the [export] extra, used once
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    dest = Path(dest)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = (x for side in (input_size, CONTAINED_SIDE) for x in _views(side))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.items, None)
            return None if x is None else {"image": x}

    pre = dest.with_suffix(".pre.tmp")
    tmp = dest.with_suffix(".tmp")
    try:
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, dest)
    finally:
        for leftover in (pre, tmp):
            leftover.unlink(missing_ok=True)
    return dest
