"""Decoding: every mode ends as upright RGB; bad input is a DecodeError with a reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from neardup.errors import DecodeError
from neardup.features import decode, extract

from .conftest import PHOTOS, bomb_png, encode, load_rgb


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return load_rgb(PHOTOS[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda im: encode(im.convert("CMYK"), "JPEG"),
        lambda im: encode(im.convert("L"), "PNG"),
        lambda im: encode(im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0),
        lambda im: encode(im.convert("LA"), "PNG"),
        lambda im: encode(im.convert("RGBA"), "WEBP"),
        lambda im: encode(im.convert("1"), "PNG"),
        lambda im: encode(im, "TIFF"),
        lambda im: encode(im, "BMP"),
        lambda im: encode(im, "GIF"),
        lambda im: encode(im, "PPM"),
        lambda im: encode(Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257), "PNG"),
    ],
    ids=["cmyk-jpeg", "grey-png", "palette-transparent", "la-png", "rgba-webp", "bilevel", "tiff", "bmp", "gif", "ppm", "16bit-png"],
)
def test_modes_decode_to_rgb(photo, make):
    d = decode(make(photo))
    assert d.rgb.dtype == np.uint8 and d.rgb.ndim == 3 and d.rgb.shape[2] == 3
    assert max(d.rgb.shape[:2]) <= 256
    assert (d.width, d.height) == photo.size


def test_sixteen_bit_png_is_not_clipped(photo):
    grey = np.asarray(photo.convert("L"))
    d = decode(encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"))
    assert d.rgb.mean() == pytest.approx(grey.mean(), abs=3)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(photo, orientation):
    upright = extract(encode(photo, "JPEG", quality=92))
    stored = photo.transpose({3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                              8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    f = extract(encode(stored, "JPEG", quality=92, exif=exif))
    assert (f.width, f.height) == photo.size
    assert bin(int(f.p64[0]) ^ int(upright.p64[0])).count("1") <= 4


def test_invalid_exif_orientation_is_ignored(photo):
    exif = Image.Exif()
    exif[0x0112] = 77
    f = extract(encode(photo, "JPEG", exif=exif))
    assert (f.width, f.height) == photo.size


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty-file"),
        (b"hello, I am text named .jpg\n" * 10, "not-an-image"),
        (b"<html><body>not a png</body></html>", "not-an-image"),
        (bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)), "not-an-image"),
        (bomb_png(60000, 60000), "too-many-pixels"),
    ],
    ids=["empty", "text", "html", "random", "bomb"],
)
def test_bad_input_raises_decode_error_with_reason(data, reason):
    with pytest.raises(DecodeError) as e:
        decode(data)
    assert e.value.reason == reason
    assert str(e.value)


def test_truncated_jpeg_is_a_decode_error(photo):
    data = encode(photo, "JPEG")
    with pytest.raises(DecodeError) as e:
        decode(data[: len(data) // 3])
    assert e.value.reason in ("truncated", "corrupt")


def test_max_pixels_is_a_user_limit(photo):
    with pytest.raises(DecodeError, match="--max-pixels"):
        decode(encode(photo, "PNG"), max_pixels=1000)


def test_reduced_decode_keeps_features_close_to_full_decode(photo):
    big = photo.resize((photo.width * 4, photo.height * 4), Image.Resampling.BICUBIC)
    a = extract(encode(big, "JPEG", quality=95))
    b = extract(encode(big, "PNG"))  # PNG takes the non-draft path
    assert (a.width, a.height) == (b.width, b.height) == big.size
    assert bin(int(a.p64[0]) ^ int(b.p64[0])).count("1") <= 4


def test_features_keep_no_pixels(photo):
    # the largest thing kept is the 32x32 layout signature, then the 94 search codes (752 bytes:
    # crop windows, tilted frames, the slot code); nothing of working-image size
    f = extract(encode(photo, "JPEG"))
    arrays = [getattr(f, x.name) for x in dataclasses.fields(f) if isinstance(getattr(f, x.name), np.ndarray)]
    assert len(arrays) == 6 and sum(a.nbytes for a in arrays) <= 1600 + 752
    assert f.sig.shape == (32, 32) and f.windows.shape == (94,) and f.windows.dtype == np.uint64


@pytest.mark.parametrize("quality", [5, 30, 50, 75, 90, 100])
def test_jpeg_quality_is_read_from_the_tables(photo, quality):
    assert decode(encode(photo, "JPEG", quality=quality)).jpeg_quality == quality

