"""The side windows of features/windows.py: made as the centre window is, and they find crops
taken towards an edge."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageOps

from neardup.features import windows
from neardup.features.extract import extract

from .conftest import PHOTOS, encode, load_rgb


def test_the_centre_window_made_from_the_layout_is_the_stored_centre_code(monkeypatch):
    for p in PHOTOS:
        f = extract(p.read_bytes())
        monkeypatch.setattr(windows, "WINDOW_OFFSETS", ((2, 2),))
        code = windows.window_codes(f.sig[None], np.array([f.canon]))[0, 0]
        assert int(np.bitwise_count(np.uint64(code) ^ f.c64[f.canon])) <= 2, p.name


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("corner", ["top-left", "bottom-right"])
@pytest.mark.parametrize("mirror", [False, True])
def test_a_corner_crop_is_within_the_radius_of_a_side_window(photo, corner, mirror):
    im = load_rgb(photo)
    if mirror:  # the windows are taken in the canonical orientation, whatever the stored one
        im = ImageOps.mirror(im)
    w, h = int(im.width * 0.875), int(im.height * 0.875)
    box = (0, 0, w, h) if corner == "top-left" else (im.width - w, im.height - h, im.width, im.height)
    original = extract(encode(im, quality=90))
    crop = extract(encode(im.crop(box), quality=85))
    # as the search has them: the original queries its windows in its canonical orientation and
    # in each alternative one; the crop is indexed by its canonical code and its alternatives'
    turns = [original.canon] + [v for v in range(8) if original.alt_mask >> v & 1]
    codes = np.concatenate([windows.window_codes(original.sig[None], np.array([v]))[0] for v in turns])
    indexed = np.array([crop.p64[v] for v in [crop.canon] + [v for v in range(8) if crop.alt_mask >> v & 1]])
    best_window = int(np.bitwise_count(codes[:, None] ^ indexed[None, :]).min())
    assert best_window <= 8, best_window


def test_no_layouts_no_codes():
    assert windows.window_codes(np.zeros((0, 32, 32), np.uint8), np.zeros(0, np.int64)).shape == (0, 8)


