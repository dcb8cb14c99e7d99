"""The copy kept is the one with the most real detail, not the most pixels or gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageFilter, ImageOps

import neardup

from .conftest import PHOTOS, load_rgb

EDITS = {
    "upscaled": lambda im: im.resize((int(im.width * 1.6), int(im.height * 1.6)), Image.Resampling.BICUBIC),
    "sharpened": lambda im: im.filter(ImageFilter.UnsharpMask(radius=2, percent=200)),
    "blurred": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "bordered": lambda im: ImageOps.expand(im, border=30, fill=(0, 0, 0)),
}


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_original_is_kept_over_degraded_copies(tmp_path, photo):
    im = load_rgb(photo)
    im.save(tmp_path / "original.jpg", quality=92)
    for name, edit in EDITS.items():
        if name == "upscaled" and 1.6 * max(im.size) >= 1024:
            continue  # draft-reduced JPEG undoes the upscale: the documented blind spot
        edit(im).save(tmp_path / f"{name}.jpg", quality=88)
    im.save(tmp_path / "lowq.jpg", quality=30)
    result = neardup.scan([str(tmp_path)], cache=None, workers=1)
    assert len(result.groups) == 1
    g = result.groups[0]
    assert Path(g.keep).name == "original.jpg", (g.keep, g.reason)
    assert len(g.members) == len(list(tmp_path.iterdir()))
