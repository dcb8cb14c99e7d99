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
    softness: float  # how little detail the decoded pixels hold (1 sharp .. 2 smooth)


def _jpeg_quality(im: Image.Image) -> int:
    """The IJG quality factor whose scaled luminance table best matches the file's.

    Pillow returns tables in natural (row-major) order.  Files from encoders that do not
    scale the IJG table still get the nearest factor, which is all the quality score needs.
    """
    q = getattr(im, "quantization", None)
    if not q or 0 not in q or len(q[0]) != 64:
        return 0
    table = np.asarray(q[0], dtype=np.float64)
    err = np.abs(_IJG_SCALED - table[None, :]).mean(axis=1)
    return int(np.argmin(err)) + 1


# IJG standard luminance table (ITU-T T.81 Annex K), natural order, and the tables libjpeg
# writes for quality 1..100 (baseline: clipped to 1..255).
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
     69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55,
     64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103,
     99], dtype=np.float64)
_Q = np.arange(1, 101, dtype=np.float64)
_SCALE = np.where(_Q < 50, 5000.0 / _Q, 200.0 - 2.0 * _Q)
_IJG_SCALED = np.clip(np.floor((_IJG_LUMA[None, :] * _SCALE[:, None] + 50.0) / 100.0), 1, 255)


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
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS != max_pixels:
        # Pillow's own bomb limit (89M by default) would otherwise preempt --max-pixels, both
        # ways: the user's limit is the one that holds (a process-wide Pillow setting)
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise DecodeError("too-many-pixels", f"decompression bomb refused: {e} (raise --max-pixels to accept it)") from None
    except Image.DecompressionBombWarning as e:
        raise DecodeError("too-many-pixels", f"decompression bomb refused: {e} (raise --max-pixels to accept it)") from None
    except Image.UnidentifiedImageError:
        raise DecodeError("not-an-image", "not a recognised image format: the bytes match no supported format") from None
    except Exception as e:  # Pillow raises many types for unknown data
        raise DecodeError("not-an-image", f"not a recognised image format ({type(e).__name__}: {e})") from None
    try:
        return _decode_opened(im, max_pixels=max_pixels, work_side=work_side)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError("too-many-pixels", f"decompression bomb refused: {e} (raise --max-pixels to accept it)") from None
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
    # Reduced-size decode: ask for twice the working size so the final resize antialiases and
    # the softness check sees native pixels.  From 4x the working size up, the DCT scaling
    # removes upscaling evidence either way (see quality.py), so ask for the working size only:
    # a 12-megapixel JPEG then decodes at 1/8, not 1/4.
    want = work_side if max(w, h) >= 4 * work_side else 2 * work_side
    if fmt in ("JPEG", "MPO"):
        if im.mode == "CMYK":
            im.draft("RGB", (max(1, w * want // max(w, h)), max(1, h * want // max(w, h))))
        else:
            im.draft(im.mode if im.mode == "L" else "RGB",
                     (max(1, w * want // max(w, h)), max(1, h * want // max(w, h))))
    im.load()  # the first frame of an animation
    # softness on the pixels as decoded: native for every format but draft-reduced JPEG,
    # whose DCT scaling already undoes an upscale (a known blind spot, see quality.py)
    softness = _softness(im)
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
        softness=softness,
    )


def _softness(im: Image.Image, side: int = 256) -> float:
    """Gradient at half resolution over gradient at full resolution, on a central patch.

    Natural detail makes per-pixel gradients nearly as strong at full as at half resolution
    (ratio ~1.0-1.3); pixels made by upscaling or blur are smooth, so the ratio tends to 2.
    Measured on the decoded (not yet thumbnailed) pixels, so it sees upscaling that the
    reduced JPEG decode did not remove.
    """
    w, h = im.size
    x0, y0 = max(0, (w - side) // 2), max(0, (h - side) // 2)
    g = np.asarray(_to_rgb(im.crop((x0, y0, min(w, x0 + side), min(h, y0 + side)))).convert("L"), dtype=np.int16)
    hh, ww = (g.shape[0] // 2) * 2, (g.shape[1] // 2) * 2
    if hh < 8 or ww < 8:
        return 1.0
    # integer arithmetic throughout: 2x2 block sums (4x the means) fit int16
    s1 = float(np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean())
    g2 = g[:hh:2, :ww:2] + g[1:hh:2, :ww:2] + g[:hh:2, 1:ww:2] + g[1:hh:2, 1:ww:2]
    s2 = float(np.abs(np.diff(g2, axis=1)).mean() + np.abs(np.diff(g2, axis=0)).mean()) / 4.0
    return round(min(2.0, max(0.5, s2 / s1)), 4) if s1 > 1e-3 else 2.0


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

