"""Decode an image once, at reduced size, into the small arrays every feature needs.

The decode is the dominant cost of a scan, so it is done once per file and as small as the
features allow: a JPEG is decoded by libjpeg-turbo's DCT scaling at 1/2, 1/4 or 1/8 (the
smallest scale whose long side is still :data:`FEATURE_MIN` pixels), everything else by Pillow,
then reduced by an integer box filter.  EXIF orientation is applied, alpha is composited on a
fixed grey background and every mode (CMYK, 16-bit, palette, bilevel) ends as 8-bit RGB.
No pixels leave this module except the small feature image (and, when asked, a view for the
CNN of thorough mode).
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..config import MAX_PIXELS
from ..errors import DecodeError
from . import jpeg
from .hashes import to_gray

__all__ = ["Decoded", "decode", "is_lossless", "LOSSLESS_FORMATS", "native_softness", "softness_of", "gradient_ratios", "SUPPORTED_FORMATS", "WORK_SIDE",
           "FEATURE_MIN"]

#: Formats recognised by their content (magic bytes), whatever the file is called.
SUPPORTED_FORMATS = frozenset(
    {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "HEIF", "AVIF", "DIB", "ICO"}
)
#: The longer side of the view thorough mode embeds (and local features start from).
WORK_SIDE = 256
#: The feature image's long side is at least this (when the file is that large): every hash is
#: computed on a 64x64 resample of it, which needs no more than 8 cycles across the frame, and
#: border trimming gets about 1% precision.  JPEGs decode at the smallest DCT scale that
#: keeps it, so a 481x321 photo decodes at 1/4 and a 12-megapixel one at 1/8.
FEATURE_MIN = 96
#: Side of the central patch the softness is measured on.
SOFT_PATCH = 256
#: Background that transparent pixels are composited on: mid grey hurts neither light nor
#: dark subjects, and is the same for every copy so copies still match.
ALPHA_BACKGROUND = (128, 128, 128)

@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF once per process, if pillow-heif is installed."""
    try:
        import pillow_heif  # noqa: PLC0415 - registers HEIF with Pillow only where it is installed
        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - optional dependency
        pass


@dataclass(frozen=True, slots=True)
class Decoded:
    """The small feature image, and the facts about the file that the quality score needs."""

    small: np.ndarray  # uint8 (h, w, 3), upright; long side in [FEATURE_MIN, 2 * FEATURE_MIN) when the file allows
    width: int  # full-resolution size, upright
    height: int
    format: str
    jpeg_quality: int  # estimated from the quantisation tables; 0 where not JPEG
    lossless: bool
    scale: int  # the DCT scale denominator of the decode (1: native pixels)
    view: np.ndarray | None = None  # uint8 (h, w, 3), upright, long side <= the view side asked for

    @property
    def rgb(self) -> np.ndarray:
        """The view when one was asked for, else the feature image."""
        return self.view if self.view is not None else self.small


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


#: formats that store pixels as they are (WebP too, when its lossless flag is set)
LOSSLESS_FORMATS = frozenset({"PNG", "BMP", "TIFF", "PPM", "GIF", "DIB"})


def is_lossless(im: Image.Image) -> bool:
    """Whether an opened image's format keeps its pixels exactly."""
    return im.format in LOSSLESS_FORMATS or (im.format == "WEBP" and bool(getattr(im, "info", {}).get("lossless")))


def _bomb(e: Exception) -> DecodeError:
    return DecodeError("too-many-pixels", f"decompression bomb refused: {e} (raise --max-pixels to accept it)")


def _check_size(w: int, h: int, max_pixels: int) -> None:
    if w <= 0 or h <= 0:
        raise DecodeError("corrupt", f"image declares an invalid size {w}x{h}")
    if w * h > max_pixels:
        raise DecodeError(
            "too-many-pixels",
            f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (raise --max-pixels to accept it)",
        )


def jpeg_scale(width: int, height: int, min_side: int) -> int:
    """The largest DCT scale denominator (1, 2, 4, 8) whose long side is still >= ``min_side``."""
    long = max(width, height)
    for s in (8, 4, 2):
        if long // s >= min_side:
            return s
    return 1


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS, view_side: int = 0) -> Decoded:
    """Decode ``data`` (the whole file) into a small upright RGB feature image.

    ``view_side`` > 0 also returns a view of that long side (thorough mode's CNN input); the
    feature image never depends on it, so features are the same whichever mode computed them.

    Raises
    ------
    DecodeError
        With a reason slug when the bytes are empty, not a supported image, truncated or
        corrupt, or declare more than ``max_pixels`` pixels (a decompression bomb).
    """
    if not data:
        raise DecodeError("empty-file", "the file is empty (0 bytes)")
    if data[:3] == jpeg.SOI:
        got = _decode_jpeg(data, max_pixels=max_pixels, view_side=view_side)
        if got is not None:
            return got
    return _decode_pillow(data, max_pixels=max_pixels, view_side=view_side)


def _decode_jpeg(data: bytes, *, max_pixels: int, view_side: int) -> Decoded | None:
    hdr = jpeg.read_header(data)
    if hdr is None:
        return None
    _check_size(hdr.width, hdr.height, max_pixels)
    scale = jpeg_scale(hdr.width, hdr.height, FEATURE_MIN)
    arr = jpeg.decode_scaled(data, hdr, scale)
    if arr is None:
        return None
    small = _small(arr)
    o = hdr.orientation
    view = None
    if view_side:
        vscale = jpeg_scale(hdr.width, hdr.height, view_side)
        varr = arr if vscale == scale else jpeg.decode_scaled(data, hdr, vscale)
        if varr is None:
            return None
        view = _orient(_fit(varr, view_side), o)
    w, h = (hdr.height, hdr.width) if o in (5, 6, 7, 8) else (hdr.width, hdr.height)
    return Decoded(small=_orient(small, o), width=w, height=h, format="MPO" if hdr.mpo else "JPEG",
                   jpeg_quality=hdr.quality, lossless=False, scale=scale, view=view)


def _small(arr: np.ndarray) -> np.ndarray:
    """The feature image: ``arr`` box-reduced by the integer factor that keeps its long side
    in [FEATURE_MIN, 2 * FEATURE_MIN)."""
    f = max(1, max(arr.shape[:2]) // FEATURE_MIN)
    if f == 1:
        return arr
    return np.asarray(Image.fromarray(arr).reduce(f))


def _fit(arr: np.ndarray, side: int) -> np.ndarray:
    if max(arr.shape[:2]) <= side:
        return arr
    im = Image.fromarray(arr)
    im.thumbnail((side, side), Image.Resampling.BOX, reducing_gap=None)
    return np.asarray(im)


# EXIF orientation -> the array transform that makes the stored pixels upright
def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 1:
        return a
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.transpose(1, 0, 2)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a.transpose(1, 0, 2)[::-1, ::-1]
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    _register_heif()
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS != max_pixels:
        # Pillow's own bomb limit (89M by default) would otherwise preempt --max-pixels, both
        # ways: the user's limit is the one that holds (a process-wide Pillow setting)
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb(e) from None
    except UnidentifiedImageError:
        raise DecodeError("not-an-image", "not a recognised image format: the bytes match no supported format") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for unknown data
        raise DecodeError("not-an-image", f"not a recognised image format ({type(e).__name__}: {e})") from None


def _decode_pillow(data: bytes, *, max_pixels: int, view_side: int) -> Decoded:
    im = _open(data, max_pixels)
    try:
        return _decode_opened(im, data, max_pixels=max_pixels, view_side=view_side)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb(e) from None
    except MemoryError:
        raise DecodeError("out-of-memory", "ran out of memory decoding this image") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, ZeroDivisionError) as e:
        msg = str(e)
        reason = "truncated" if "truncated" in msg or isinstance(e, EOFError) else "corrupt"
        raise DecodeError(reason, f"cannot decode {im.format or 'image'}: {type(e).__name__}: {msg}") from None
    finally:
        im.close()


def _draft(im: Image.Image, min_side: int) -> int:
    """Ask a JPEG for its DCT-scaled decode (long side >= ``min_side``); the scale granted."""
    if im.format not in ("JPEG", "MPO"):
        return 1
    w, h = im.size
    s = jpeg_scale(w, h, min_side)
    if s > 1:
        im.draft("RGB" if im.mode != "L" else "L", (max(1, w // s), max(1, h // s)))
    return max(1, round(w / im.size[0]))


def _reduced_rgb(im: Image.Image, min_side: int) -> np.ndarray:
    f = max(1, max(im.size) // min_side)
    if f > 1:
        im = im.reduce(f) if im.mode in ("RGB", "RGBA", "L", "LA", "CMYK", "YCbCr") else _to_rgb(im).reduce(f)
    a = np.asarray(_to_rgb(im), dtype=np.uint8)
    if a.ndim != 3 or a.shape[2] != 3 or a.size == 0:
        raise DecodeError("corrupt", f"decoded to an unusable array of shape {a.shape}")
    return a


def _decode_opened(im: Image.Image, data: bytes, *, max_pixels: int, view_side: int) -> Decoded:
    fmt = im.format or "?"
    if fmt not in SUPPORTED_FORMATS:
        raise DecodeError("unsupported-format", f"{fmt} images are not supported")
    w, h = im.size
    _check_size(w, h, max_pixels)
    jpeg_q = 0
    if fmt in ("JPEG", "MPO"):
        q = getattr(im, "quantization", None)
        if q and 0 in q and len(q[0]) == 64:
            jpeg_q = jpeg.quality_from_table(np.asarray(q[0]))
    lossless = is_lossless(im)
    orientation = 1
    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not worth failing the image for
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    # a JPEG here is one the fast path declined (CMYK, 12-bit, a libjpeg warning): same scaling
    scale = _draft(im, FEATURE_MIN)
    im.load()  # the first frame of an animation
    small = _reduced_rgb(im, FEATURE_MIN)
    view = None
    if view_side:
        if fmt in ("JPEG", "MPO") and jpeg_scale(w, h, view_side) != jpeg_scale(w, h, FEATURE_MIN):
            with _open(data, max_pixels) as big:  # the view needs a larger DCT scale: decode again
                _draft(big, view_side)
                big.load()
                view = _fit(_reduced_rgb(big, 2 * view_side), view_side)
        else:
            view = _fit(_reduced_rgb(im, 2 * view_side), view_side)
        view = _orient(view, orientation)
    up_w, up_h = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return Decoded(small=_orient(small, orientation), width=up_w, height=up_h, format=fmt, jpeg_quality=jpeg_q,
                   lossless=lossless, scale=scale, view=view)


def softness_of(pixels: Image.Image | np.ndarray, side: int = SOFT_PATCH) -> float:
    """Gradient at half resolution over gradient at full resolution, on a central patch.

    Natural detail makes per-pixel gradients nearly as strong at full as at half resolution
    (ratio ~1.0-1.3, at any scale: photographs are roughly scale-invariant); pixels made by
    upscaling or blur are smooth, so the ratio tends to 2.
    """
    if isinstance(pixels, Image.Image):
        w, h = pixels.size
        x0, y0 = max(0, (w - side) // 2), max(0, (h - side) // 2)
        patch = pixels.crop((x0, y0, min(w, x0 + side), min(h, y0 + side)))
        g = np.asarray(_to_rgb(patch).convert("L") if patch.mode != "L" else patch, dtype=np.uint8)
    else:
        h, w = pixels.shape[:2]
        y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        p = pixels[y0 : y0 + side, x0 : x0 + side]
        g = to_gray(p) if p.ndim == 3 else p
    return _gradient_ratio(g)


def gradient_ratios(g: np.ndarray) -> np.ndarray:
    """:func:`softness_of` for a stack of grey images (N, h, w), each taken whole."""
    n, h, w = g.shape
    hh, ww = (h // 2) * 2, (w // 2) * 2
    if hh < 8 or ww < 8:
        return np.ones(n)
    x = g.astype(np.int16) if g.dtype == np.uint8 else g
    s1 = (np.abs(np.diff(x, axis=2)).sum(axis=(1, 2)) / (h * (w - 1))
          + np.abs(np.diff(x, axis=1)).sum(axis=(1, 2)) / ((h - 1) * w))
    x = x[:, :hh, :ww]
    x2 = x[:, ::2, ::2] + x[:, 1::2, ::2] + x[:, ::2, 1::2] + x[:, 1::2, 1::2]  # 4x the 2x2 means
    h2, w2 = x2.shape[1:]
    s2 = (np.abs(np.diff(x2, axis=2)).sum(axis=(1, 2)) / (h2 * (w2 - 1))
          + np.abs(np.diff(x2, axis=1)).sum(axis=(1, 2)) / ((h2 - 1) * w2)) / 4.0
    ok = s1 > 1e-3
    ratio = np.where(ok, np.clip(s2 / np.where(ok, s1, 1.0), 0.5, 2.0), 2.0)
    return np.round(ratio, 4)


def _gradient_ratio(g: np.ndarray) -> float:
    return float(gradient_ratios(g[None])[0])


def native_softness(data: bytes, *, min_side: int, max_pixels: int = MAX_PIXELS) -> tuple[float, int]:
    """Softness of a file measured where it has the most pixels that matter: decoded at the
    smallest DCT scale whose long side is still >= ``min_side`` (native for other formats).

    The keeper check asks this of a copy that would win on pixels over a smaller one: an
    upscaled copy looks sharp at reduced size and soft here.  Returns ``(softness, scale)``.
    """
    if data[:3] == jpeg.SOI:
        hdr = jpeg.read_header(data)
        if hdr is not None:
            _check_size(hdr.width, hdr.height, max_pixels)
            scale = jpeg_scale(hdr.width, hdr.height, min_side)
            arr = jpeg.decode_scaled(data, hdr, scale, grey=True)
            if arr is not None:
                return softness_of(arr), scale
    im = _open(data, max_pixels)
    try:
        w, h = im.size
        _check_size(w, h, max_pixels)
        scale = _draft(im, min_side)
        im.load()
        return softness_of(im), scale
    except DecodeError:
        raise
    except Exception as e:  # noqa: BLE001 - a decoder's error of any type is this image's failure
        raise DecodeError("corrupt", f"cannot decode: {type(e).__name__}: {e}") from None
    finally:
        im.close()
