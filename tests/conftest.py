from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "bench"
PHOTOS = sorted(p for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))


def need_shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/bench is not present")
    return SHARED


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def encode(im: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    return PHOTOS
