"""Static int8 quantisation of thorough mode's model, calibrated on photos outside the dev set.

    python3 benchmarks/quantise.py --out /tmp/lite0-int8.onnx [--per-channel] [--calibration 200]
    python3 benchmarks/devset.py --seed 1 --mode thorough --model /tmp/lite0-int8.onnx

Exports EfficientNet-Lite0 (feature map included) if needed, then quantises the float export
(the default model is since quantised at export by embed/quantise.py, calibrated on the photos
shipped with neardup; this script tries other variants) with ONNX Runtime (QDQ, int8 weights,
uint8 activations, per tensor or ``--per-channel``) calibrated on the UKBench, INRIA
Holidays and DISC21 samples in ``../shared/bench/real`` (photos neither the dev set, built from
BSDS, nor eval/contains.py, built from Kodak, the PyPI photos and imagededup's base images, is
made of), each shown at both sides the embedder uses (224 and 128).  Prints the time of one
image at each side, float and int8, on one thread, and the cosine between the float and int8
embeddings of the calibration photos (how far quantisation moves them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

from neardup.embed.model import Embedder, ModelSpec, default_model_spec
from neardup.embed.regions import CONTAINED_SIDE

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"
SOURCES = [BENCH / "real" / "nd_samples", *(BENCH / "real" / "imagededup" / d for d in
                                           ("mixed_images", "mixed_nested_images", "formats_images", "history_extras"))]


def calibration_photos(limit: int) -> list[np.ndarray]:
    paths = sorted(p for src in SOURCES for p in src.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(paths) // limit)
    out = []
    for p in paths[::step][:limit]:
        try:
            with Image.open(p) as im:
                rgb = im.convert("RGB")
        except OSError:  # the imagededup folders hold a deliberately corrupt file
            continue
        rgb.thumbnail((512, 512))
        out.append(np.asarray(rgb))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/lite0-int8.onnx"))
    ap.add_argument("--calibration", type=int, default=200)
    ap.add_argument("--per-channel", action="store_true")
    a = ap.parse_args()
    # the float export beside the default (int8) model: the variants here start from it
    spec = ModelSpec.from_file(Path(default_model_spec(None).path).parent / "efficientnet-lite0-gem3-map.onnx",
                               name="efficientnet-lite0")
    photos = calibration_photos(a.calibration)
    print(f"calibration photos: {len(photos)}")
    float_embedder = Embedder(spec)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter([(im, side) for im in photos for side in (spec.input_size, CONTAINED_SIDE)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            got = next(self.items, None)
            if got is None:
                return None
            im, side = got
            x = np.asarray(Image.fromarray(im).resize((side, side), Image.Resampling.BILINEAR), np.float32)
            x = ((x - float_embedder._mean) / float_embedder._std).transpose(2, 0, 1)[None]
            return {float_embedder.input_name: np.ascontiguousarray(x, np.float32)}

    pre = a.out.with_suffix(".pre.onnx")
    quant_pre_process(spec.path, str(pre))
    t = time.perf_counter()
    quantize_static(str(pre), str(a.out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=a.per_channel)
    print(f"quantised in {time.perf_counter() - t:.1f} s -> {a.out}")
    int8 = Embedder(ModelSpec.from_file(a.out, name="lite0-int8"))
    for name, emb in (("float", float_embedder), ("int8", int8)):
        for side in (spec.input_size, CONTAINED_SIDE):
            batch = [photos[0]] * 4
            emb._run(batch, side)
            t = time.perf_counter()
            for _ in range(10):
                emb._run(batch, side)
            print(f"{name} side {side}: {(time.perf_counter() - t) / 40 * 1000:.1f} ms an image (one thread, batches of 4)")
    ef, eq = float_embedder.embed(photos).astype(np.float32), int8.embed(photos).astype(np.float32)
    cos = (ef * eq).sum(axis=1)
    print(f"float vs int8 embedding cosine over the calibration photos: median {np.median(cos):.4f}, min {cos.min():.4f}")


if __name__ == "__main__":
    main()
