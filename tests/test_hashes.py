"""Hashes: pinned values, imagehash compatibility, dihedral variants without re-decoding."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from neardup.features.hashes import (
    dct_coefficients,
    dct_hash_variants,
    hamming,
    pack_bits,
    to_gray,
    trim_borders,
    whash64,
    whash64_variants,
)

from .conftest import PHOTOS, load_rgb


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_whash_is_bit_identical_to_imagehash(path):
    im = load_rgb(path).convert("L")
    ref = pack_bits(imagehash.whash(im).hash.reshape(-1))
    assert int(hamming(whash64(np.asarray(im)), ref)) == 0


def _dihedral_images(g: np.ndarray) -> list[np.ndarray]:
    out = []
    for flip in (False, True):
        b = g[:, ::-1] if flip else g
        for k in range(4):
            out.append(np.ascontiguousarray(np.rot90(b, k)))
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(16, 90), st.integers(16, 90))
def test_dihedral_variants_equal_hashes_of_transformed_images(seed, h, w):
    # A random image with structure at all scales; exact equality up to floating round-off
    # on coefficients that sit at the median (a few bits; unrelated images differ in half).
    rng = np.random.default_rng(seed)
    g = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC))
    g = np.clip(g.astype(int) + rng.integers(-20, 21, g.shape), 0, 255).astype(np.uint8)
    v_dct = dct_hash_variants(dct_coefficients(g))
    v_w = whash64_variants(g)
    for i, t in enumerate(_dihedral_images(g)):
        assert int(hamming(dct_hash_variants(dct_coefficients(t))[0], v_dct[i])) <= 8  # of 256
        assert int(hamming(whash64_variants(t)[0], v_w[i])) <= 3  # of 64


def test_pinned_hashes_catch_drift():
    # Known values for a CC0 photo: a change here changes every user's cache and results,
    # so it must come with a FEATURE_VERSION bump.
    g = to_gray(np.asarray(load_rgb(PHOTOS[0]).resize((256, 200))))
    assert f"{int(whash64(g)[0]):016x}" == PINNED["whash"]
    d = dct_hash_variants(dct_coefficients(g))[0]
    assert "".join(f"{int(x):016x}" for x in d) == PINNED["dct256"]


PINNED = {
    "whash": "c2c08e4b09a377f7",
    "dct256": "31ac5ffee6df46225131214897e25edba411e16552ca376ab8c93d465d07426d",
}


def test_trim_removes_uniform_border_only():
    img = np.full((100, 120), 255, np.uint8)
    img[20:70, 30:100] = np.random.default_rng(0).integers(0, 200, (50, 70), dtype=np.uint8)
    assert trim_borders(img) == (20, 70, 30, 100)
    plain = np.full((50, 50), 7, np.uint8)
    assert trim_borders(plain) == (0, 50, 0, 50)


def test_hamming_broadcasts():
    a = np.array([[0, 0], [1, 3]], dtype=np.uint64)
    assert hamming(a[0], a[1]).tolist() == 3
    assert hamming(a, a[0]).tolist() == [0, 3]


def test_to_gray_matches_pillow():
    im = Image.open(PHOTOS[1]).convert("RGB")
    assert (to_gray(np.asarray(im)) == np.asarray(im.convert("L"))).all()
