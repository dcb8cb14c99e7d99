"""Hashes: pinned values, imagehash agreement, dihedral variants without re-decoding, and
features that do not depend on the batch an image is computed in."""

from __future__ import annotations

import hashlib

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from neardup.features import loops
from neardup.features.decode import Decoded
from neardup.features.extract import FeatureBatch, extract, features_batch, pixel_planes
from neardup.features.hashes import (
    dct_coefficients,
    dct_hash_variants,
    hamming,
    oriented_hash,
    outer_lines,
    pack_bits,
    to_gray,
    trim_borders,
    trim_sides,
    variant_hashes,
    whash64,
)

from .conftest import PHOTOS, encode, load_rgb


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_whash_agrees_with_imagehash(path):
    # imagehash resizes to a power of two with Lanczos before its Haar transform; the LL band
    # at 8x8 is then nearly the exact block means this computes
    im = load_rgb(path)
    ref = pack_bits(imagehash.whash(im).hash.reshape(-1))
    assert int(hamming(whash64(np.asarray(im.convert("L"), np.float32)[None])[0:1], ref)) <= 2


def _dihedral_images(g: np.ndarray) -> list[np.ndarray]:
    out = []
    for flip in (False, True):
        b = g[:, ::-1] if flip else g
        for k in range(4):
            out.append(np.ascontiguousarray(np.rot90(b, k)))
    return out


def _textured(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC))
    return np.clip(g.astype(int) + rng.integers(-20, 21, g.shape), 0, 255).astype(np.uint8)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(16, 90), st.integers(16, 90))
def test_dihedral_variants_equal_hashes_of_transformed_images(seed, h, w):
    # the DCT of a rotated or flipped image is a signed transpose of the original's, exactly:
    # only coefficients tied at the median (floating round-off) may differ
    g = _textured(seed, h, w).astype(np.float32)
    v_dct = dct_hash_variants(dct_coefficients(g))
    for i, t in enumerate(_dihedral_images(g)):
        assert int(hamming(dct_hash_variants(dct_coefficients(t))[0], v_dct[i])) <= 2  # of 256


def _decoded(rgb: np.ndarray) -> Decoded:
    h, w = rgb.shape[:2]
    return Decoded(small=rgb, width=w * 4, height=h * 4, format="JPEG", jpeg_quality=90, lossless=False, scale=4)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3), st.integers(96, 191), st.integers(40, 191))
def test_features_do_not_depend_on_the_batch(seed, border, long, short):
    # images are padded onto shared canvases and trimmed by matrix choice: an image's features
    # must be the same alone, among others of any size, and in any position
    rng = np.random.default_rng(seed)
    rgb = np.stack([_textured(seed + c, short, long) for c in range(3)], axis=-1)
    if border:
        p = border * 4
        rgb[:p] = 255
        rgb[:, -p:] = 0
    sizes = [(int(rng.integers(40, 192)), int(rng.integers(96, 192))) for _ in range(5)]
    others = [np.stack([_textured(seed + 7 + c, oh, ow) for c in range(3)], axis=-1) for oh, ow in sizes]
    others.append(np.ascontiguousarray(rgb.transpose(1, 0, 2)))
    alone = features_batch([_decoded(rgb)], [b"a" * 16])
    mixed = features_batch([_decoded(o) for o in others[:3]] + [_decoded(rgb)] + [_decoded(o) for o in others[3:]],
                           [b"o" * 16] * 3 + [b"a" * 16] + [b"o" * 16] * 3)
    one = mixed.take([3])
    for name in ("p64", "c64", "d256", "whash", "canon", "alt_mask", "sig", "colour", "content_side"):
        assert np.array_equal(getattr(alone, name), getattr(one, name)), name
    assert np.allclose(alone.quality, one.quality, equal_nan=True)
    assert np.allclose(alone.energy, one.energy)


def test_pinned_hashes_catch_drift():
    # Known values for a CC0 photo: a change here changes every user's cache and results,
    # so it must come with a FEATURE_VERSION bump.
    f = extract(encode(load_rgb(PHOTOS[0]), "JPEG", quality=90))
    assert f"{f.whash:016x}" == PINNED["whash"]
    assert "".join(f"{int(x):016x}" for x in f.d256[0]) == PINNED["dct256"]
    assert f"{int(f.p64[0]):016x}" == PINNED["p64"]
    # every crop-window and tilted-frame code, and the slot code, at once
    assert hashlib.sha256(f.windows.astype("<u8").tobytes()).hexdigest()[:32] == PINNED["windows"]


PINNED = {
    "whash": "c2c08e4b09a377f7",
    "dct256": "31ac5ffee6df46225131214897e25edba410e16552ca37eab8c93d425d07426f",
    "p64": "315fe6465121175e",
    "windows": "b2a4875cf0edfcde4b3370b7c6d30316",
}


def test_trim_removes_uniform_border_only():
    img = np.full((100, 120), 255, np.uint8)
    img[20:70, 30:100] = np.random.default_rng(0).integers(0, 200, (50, 70), dtype=np.uint8)
    assert trim_borders(img) == (20, 70, 30, 100)
    plain = np.full((50, 50), 7, np.uint8)
    assert trim_borders(plain) == (0, 50, 0, 50)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(9, 60), st.integers(9, 60), st.integers(0, 12), st.integers(0, 12))
def test_outer_lines_of_a_padded_stack_equal_each_image_alone(seed, h, w, pad_h, pad_w):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 256, (h, w)).astype(np.float32)
    g[: h // 4] = 200.0  # a border on top, sometimes
    canvas = np.zeros((2, h + pad_h, w + pad_w), np.float32)
    canvas[1, :h, :w] = g
    u, r = outer_lines(canvas, np.array([h + pad_h, h]), np.array([w + pad_w, w]))
    assert trim_sides(g, u[1], r[1]) == trim_borders(g)


def test_hamming_broadcasts():
    a = np.array([[0, 0], [1, 3]], dtype=np.uint64)
    assert hamming(a[0], a[1]).tolist() == 3
    assert hamming(a, a[0]).tolist() == [0, 3]


def test_to_gray_matches_pillow():
    im = Image.open(PHOTOS[1]).convert("RGB")
    assert (to_gray(np.asarray(im)) == np.asarray(im.convert("L"))).all()


def test_empty_batch():
    assert len(features_batch([], [])) == 0
    assert len(FeatureBatch.concat([])) == 0


def _turned_block(coef: np.ndarray, variant: int) -> np.ndarray:
    """The DCT block of the image turned to ``variant``, made the slow way: a left-right flip
    negates the odd horizontal frequencies, and a quarter turn is a flip then a transpose."""
    odd = np.where(np.arange(coef.shape[-1]) % 2 == 1, -1.0, 1.0).astype(coef.dtype)
    out = coef * odd[None, :] if variant >= 4 else coef.copy()
    for _ in range(variant % 4):
        out = (out * odd[None, :]).T
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([8, 16]), st.booleans(), st.integers(1, 9))
def test_variant_hashes_are_the_median_hashes_of_the_turned_blocks(seed, k, skip_dc, n):
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(n, k, k)).astype(np.float32)
    coef[:, ::3, 1::2] = np.round(coef[:, ::3, 1::2])  # ties at the median, and zeros of both signs
    got = variant_hashes(coef, skip_dc=skip_dc)
    variants = rng.integers(0, 8, n)
    one = oriented_hash(coef, variants, skip_dc=skip_dc)
    for i in range(n):
        for v in range(8):
            flat = _turned_block(coef[i], v).ravel()
            ref = flat[1:] if skip_dc else flat
            bits = flat > np.median(ref)
            if skip_dc:
                bits[0] = False
            assert np.array_equal(got[i, v], pack_bits(bits[None])[0]), (i, v)
        assert np.array_equal(one[i], got[i, variants[i]]), i


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(1, 70), st.integers(1, 70))
def test_pixel_planes_compiled_and_numpy_agree_bit_for_bit(seed, m, h, w):
    """pixel_loop.c's planes are NumPy's to the last bit (so features do not depend on the
    install), and they are what they say: ITU-R 601 luma, and R - G, (R + G) / 2 - B at every
    other pixel of every other row."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (m, h, w, 3), dtype=np.uint8)
    rgb[:, : h // 3] = rgb[:, :1, :1]  # flat runs, where ties and zeros are
    luma, chroma = pixel_planes(rgb, engine="numpy")
    f = rgb.astype(np.float64)
    assert np.allclose(luma, f @ [0.299, 0.587, 0.114], atol=1e-4)
    half = f[:, ::2, ::2]
    assert np.array_equal(chroma[:, 0], half[..., 0] - half[..., 1])
    assert np.array_equal(chroma[:, 1], (half[..., 0] + half[..., 1]) / 2 - half[..., 2])
    if loops.COMPILED:
        got = pixel_planes(rgb, engine="compiled")
        assert np.array_equal(got[0].view(np.uint32), luma.view(np.uint32))
        assert np.array_equal(got[1].view(np.uint32), chroma.view(np.uint32))
