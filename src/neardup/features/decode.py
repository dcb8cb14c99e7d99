"""Decode an image once, at reduced size, into the small arrays every feature needs.

The decode is the dominant cost of a scan, so it is done once per file and as small as the
features allow: JPEG decodes through ``Image.draft`` (DCT scaling, 1/2 to 1/8 of the pixels),
other formats through ``Image.reduce``.  EXIF orientation is applied, alpha is composited on a
fixed grey background and every mode (CMYK, 16-bit, palette, bilevel) ends as 8-bit RGB.
No pixels leave this module except the small working image.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import DecodeError

__all__ = ["Decoded", "decode", "SUPPORTED_FORMATS", "WORK_SIDE"]

#: Formats recognised by their content (magic bytes), whatever the file is called.
SUPPORTED_FORMATS = frozenset(
    {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "HEIF", "AVIF", "DIB", "ICO"}
)
#: The longer side of the working image every feature is computed on.
WORK_SIDE = 256
#: Background that transparent pixels are composited on: mid grey hurts neither light nor
#: dark subjects, and is the same for every copy so copies still match.
ALPHA_BACKGROUND = (128, 128, 128)

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        _heif_registered = True
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # pragma: no cover - optional dependency
            pass


@dataclass(frozen=True, slots=True)
class Decoded:
    """The working image and the facts about the file that the quality score needs."""

    rgb: np.ndarray  # uint8 (h, w, 3), longer side <= WORK_SIDE, upright
    width: int  # full-resolution size, upright
    height: int
    format: str
    jpeg_quality: int  # estimated from the quantisation tables; 0 where not JPEG
    lossless: bool
    scale: float  # working pixels per full-resolution pixel (<= 1)


def _jpeg_quality(im: Image.Image) -> int:
    """Estimate the IJG quality factor from the luminance quantisation table."""
    q = getattr(im, "quantization", None)
    if not q or 0 not in q:
        return 0
    table = np.asarray(q[0], dtype=np.float64)
    # IJG standard luminance table in zig-zag order, as Pillow returns it.
    std = _IJG_LUMA
    scale = float(np.mean(table[: len(std)] / std)) * 100.0
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(round(min(100.0, max(1.0, quality))))


_IJG_LUMA = np.array(
    [16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49,
     35, 37, 29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56,
     80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103,
     99], dtype=np.float64)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, alpha composited on ALPHA_BACKGROUND."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = float(a.max()) if a.size else 0.0
        div = 257.0 if hi > 255 else 1.0
        return Image.fromarray(np.clip(a / div, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.nan_to_num(a).astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def decode(data: bytes, *, max_pixels: int = 200_000_000, work_side: int = WORK_SIDE) -> Decoded:
    """Decode ``data`` (the whole file) into a small upright RGB working image.

    Raises
    ------
    DecodeError
        With a reason slug when the bytes are empty, not a supported image, truncated or
        corrupt, or declare more than ``max_pixels`` pixels (a decompression bomb).
    """
    if not data:
        raise DecodeError("empty-file", "the file is empty (0 bytes)")
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise DecodeError("too-many-pixels", f"decompression bomb refused: {e}") from None
    except Image.DecompressionBombWarning as e:
        raise DecodeError("too-many-pixels", f"decompression bomb refused: {e}") from None
    except Exception as e:  # Pillow raises many types for unknown data
        raise DecodeError("not-an-image", f"not a recognised image format ({type(e).__name__}: {e})") from None
    try:
        return _decode_opened(im, max_pixels=max_pixels, work_side=work_side)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError("too-many-pixels", f"decompression bomb refused: {e}") from None
    except MemoryError:
        raise DecodeError("out-of-memory", "ran out of memory decoding this image") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, ZeroDivisionError) as e:
        msg = str(e)
        reason = "truncated" if "truncated" in msg or isinstance(e, EOFError) else "corrupt"
        raise DecodeError(reason, f"cannot decode {im.format or 'image'}: {type(e).__name__}: {msg}") from None
    finally:
        im.close()


def _decode_opened(im: Image.Image, *, max_pixels: int, work_side: int) -> Decoded:
    fmt = im.format or "?"
    if fmt not in SUPPORTED_FORMATS:
        raise DecodeError("unsupported-format", f"{fmt} images are not supported")
    w, h = im.size
    if w <= 0 or h <= 0:
        raise DecodeError("corrupt", f"image declares an invalid size {w}x{h}")
    if w * h > max_pixels:
        raise DecodeError(
            "too-many-pixels",
            f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (raise --max-pixels to accept it)",
        )
    jpeg_q = _jpeg_quality(im) if fmt in ("JPEG", "MPO") else 0
    lossless = fmt in ("PNG", "BMP", "TIFF", "PPM", "GIF", "DIB") or (
        fmt == "WEBP" and bool(getattr(im, "info", {}).get("lossless"))
    )
    orientation = 1
    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not worth failing the image for
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    # Reduced-size decode: ask for twice the working size so the final resize antialiases.
    want = 2 * work_side
    if fmt in ("JPEG", "MPO"):
        if im.mode == "CMYK":
            im.draft("RGB", (max(1, w * want // max(w, h)), max(1, h * want // max(w, h))))
        else:
            im.draft(im.mode if im.mode == "L" else "RGB",
                     (max(1, w * want // max(w, h)), max(1, h * want // max(w, h))))
    im.load()  # the first frame of an animation
    factor = max(im.size) // want
    if factor > 1 and im.mode not in ("P", "1"):
        im = im.reduce(factor)
    if orientation != 1:
        im.info.pop("exif", None)
        im = _apply_orientation(im, orientation)
    im = _to_rgb(im)
    if max(im.size) > work_side:
        im.thumbnail((work_side, work_side), Image.Resampling.BOX, reducing_gap=None)
    rgb = np.asarray(im, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise DecodeError("corrupt", f"decoded to an unusable array of shape {rgb.shape}")
    up_w, up_h = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return Decoded(
        rgb=rgb, width=up_w, height=up_h, format=fmt, jpeg_quality=jpeg_q, lossless=lossless,
        scale=rgb.shape[1] / up_w,
    )


_ORIENT = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    for t in _ORIENT.get(orientation, ()):
        im = im.transpose(t)
    return im

