"""The JPEG fast path: header facts from one walk over the markers, then a DCT-scaled decode.

Most images are JPEGs, and for a reduced-size decode most of Pillow's cost is its Python-level
header parsing.  Here the header is walked once in a few microseconds (size, components, the
luminance quantisation table for the quality estimate, the EXIF orientation) and libjpeg-turbo
decodes straight into a NumPy array at 1/2, 1/4 or 1/8 scale (``simplejpeg``).  Anything this
path does not handle (CMYK, 12-bit, a recoverable libjpeg warning, a broken header) returns
``None`` and the caller falls back to Pillow, which then also names what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["JpegHeader", "read_header", "decode_scaled", "quality_from_table", "ijg_table", "SOI", "ZIGZAG"]

SOI = b"\xff\xd8\xff"

#: natural (row-major) index -> position in the zigzag order the file stores tables in
ZIGZAG = np.array(
    [0, 1, 5, 6, 14, 15, 27, 28, 2, 4, 7, 13, 16, 26, 29, 42, 3, 8, 12, 17, 25, 30, 41, 43, 9, 11, 18, 24,
     31, 40, 44, 53, 10, 19, 23, 32, 39, 45, 52, 54, 20, 22, 33, 38, 46, 51, 55, 60, 21, 34, 37, 47, 50, 56,
     59, 61, 35, 36, 48, 49, 57, 58, 62, 63], dtype=np.intp)

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
_quality_memo: dict[bytes, int] = {}


def ijg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes at ``quality`` (1-100), natural order."""
    return _IJG_SCALED[int(quality) - 1].copy()


def quality_from_table(table: np.ndarray, *, positions: np.ndarray | None = None) -> int:
    """The IJG quality factor (1-100) whose scaled luminance table best matches ``table``
    (64 values, natural order), over all 64 ``positions`` unless told which are known.  Files
    from encoders that do not scale the IJG table still get the nearest factor, which is all the
    keeper's score needs."""
    if positions is not None:
        pos = np.asarray(positions, dtype=np.intp)
        err = np.abs(_IJG_SCALED[:, pos] - np.asarray(table, dtype=np.float64)[None, pos]).mean(axis=1)
        return int(np.argmin(err)) + 1
    key = np.asarray(table, dtype=np.uint16).tobytes()
    q = _quality_memo.get(key)
    if q is None:
        err = np.abs(_IJG_SCALED - np.asarray(table, dtype=np.float64)[None, :]).mean(axis=1)
        q = int(np.argmin(err)) + 1
        if len(_quality_memo) < 4096:  # a collection uses a handful of tables
            _quality_memo[key] = q
    return q


@dataclass(frozen=True, slots=True)
class JpegHeader:
    width: int
    height: int
    components: int
    precision: int
    quality: int  # 0 when the file has no luminance table
    table: np.ndarray | None  # the luminance quantisation table, natural order (64 int64)
    orientation: int  # EXIF orientation, 1 when absent or invalid
    mpo: bool  # a multi-picture file (Pillow calls it MPO); its first picture is the image
    adobe_transform: int  # -1 without an Adobe marker; 2 means YCCK


def _orientation(seg: bytes) -> int:
    """EXIF orientation from an APP1 payload, 1 if absent or malformed (never raises)."""
    if not seg.startswith(b"Exif\x00\x00") or len(seg) < 14:
        return 1
    tiff = seg[6:]
    order = tiff[:2]
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        return 1
    try:
        (ifd,) = struct.unpack_from(e + "I", tiff, 4)
        (n,) = struct.unpack_from(e + "H", tiff, ifd)
        for k in range(min(n, 512)):
            tag, typ, count = struct.unpack_from(e + "HHI", tiff, ifd + 2 + 12 * k)
            if tag == 0x0112:
                if typ != 3 or count < 1:
                    return 1
                (v,) = struct.unpack_from(e + "H", tiff, ifd + 2 + 12 * k + 8)
                return v if 1 <= v <= 8 else 1
    except struct.error:
        return 1
    return 1


def read_header(data: bytes) -> JpegHeader | None:  # noqa: C901 - a marker walk: one branch per JPEG marker kind
    """Walk the markers up to the first scan; ``None`` if anything looks unusual."""
    n = len(data)
    pos = 2
    width = height = components = precision = 0
    table: np.ndarray | None = None
    orientation, mpo, adobe = 1, False, -1
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > n:
            return None
        seg = data[pos + 4 : pos + 2 + length]
        if marker == 0xDA:  # start of scan: the header is over
            break
        if marker == 0xDB:  # quantisation tables
            i = 0
            while i < len(seg):
                pq, tq = seg[i] >> 4, seg[i] & 15
                size = 64 * (pq + 1)
                raw = seg[i + 1 : i + 1 + size]
                if len(raw) != size:
                    return None
                if tq == 0:
                    vals = np.frombuffer(raw, dtype=">u2" if pq else np.uint8)
                    table = vals[ZIGZAG].astype(np.int64)
                i += 1 + size
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            if len(seg) < 6:
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", seg, 0)
        elif marker == 0xE1 and orientation == 1:
            orientation = _orientation(seg)
        elif marker == 0xE2 and seg.startswith(b"MPF\x00"):
            mpo = True
        elif marker == 0xEE and seg.startswith(b"Adobe") and len(seg) >= 12:
            adobe = seg[11]
        pos += 2 + length
    else:
        return None
    if width <= 0 or height <= 0 or components not in (1, 3, 4):
        return None
    q = quality_from_table(table) if table is not None else 0
    return JpegHeader(width, height, components, precision, q, table, orientation, mpo, adobe)


def decode_scaled(data: bytes, header: JpegHeader, scale: int, *, grey: bool = False) -> np.ndarray | None:
    """RGB uint8 (h, w, 3) (or grey, (h, w)) at ``1/scale`` (1, 2, 4 or 8), stored orientation;
    ``None`` when this path cannot decode the file cleanly (the caller then asks Pillow)."""
    if header.components == 4 or header.precision != 8:
        return None  # CMYK / YCCK and 12-bit: Pillow's path
    try:
        import simplejpeg  # noqa: PLC0415 - the fast path where simplejpeg is installed; Pillow otherwise
    except ImportError:  # pragma: no cover - a dependency, but the Pillow path still works
        return None
    h = -(-header.height // scale)
    w = -(-header.width // scale)
    try:
        out = simplejpeg.decode_jpeg(data, "GRAY" if grey else "RGB", min_height=h, min_width=w, min_factor=scale,
                                     strict=True)
    except (ValueError, MemoryError, OSError):
        return None
    if out.ndim != 3 or out.shape[2] != (1 if grey else 3) or out.size == 0:
        return None
    return out[:, :, 0] if grey else out
