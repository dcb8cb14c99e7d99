from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import neardup

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


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One export of EfficientNet-Lite0 for the whole session (a few seconds): ONNX Runtime to
    run it, PyTorch (the [export] extra) to export it."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    from neardup.embed.model import default_model_spec

    cache = tmp_path_factory.mktemp("thorough-cache")
    default_model_spec(cache)
    return cache


# -- shared corpora and helpers --------------------------------------------------------
def bomb_png(w: int, h: int) -> bytes:
    def chunk(t: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00" * (w + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def make_corpus(root: Path, n_extra: int = 0) -> Path:
    """Originals, their copies (smaller, flipped, PNG), a corrupt file and a note."""
    for i, p in enumerate(PHOTOS):
        im = load_rgb(p)
        (root / "orig").mkdir(parents=True, exist_ok=True)
        (root / "copies" / "deep").mkdir(parents=True, exist_ok=True)
        (root / "orig" / f"{p.stem}.jpg").write_bytes(encode(im, quality=92))
        (root / "copies" / f"{p.stem} small.jpg").write_bytes(encode(im.resize((im.width // 2, im.height // 2)), quality=80))
        (root / "copies" / "deep" / f"{p.stem}_flip.png").write_bytes(encode(ImageOps.mirror(im), "PNG"))
        for k in range(n_extra):  # distinct crops: more work for the fault test to interrupt
            box = (k * 7 % 40, (k * 13 + i) % 40, im.width - (k * 11 % 40), im.height - (k * 5 % 40))
            (root / "extra").mkdir(exist_ok=True)
            (root / "extra" / f"{p.stem}_{k:02d}.jpg").write_bytes(encode(im.crop(box).rotate(90 * (k % 4), expand=True)))
    (root / "bad").mkdir(exist_ok=True)
    (root / "bad" / "truncated.jpg").write_bytes(encode(load_rgb(PHOTOS[0]))[:2000])
    (root / "bad" / "empty.jpg").write_bytes(b"")
    (root / "readme.txt").write_text("not an image")
    return root


def corner_crop_corpus(root: Path, *, left: float = 0.0) -> dict[str, bytes]:
    """Originals and mirrors written now; ~80% corner crops of the originals (starting at
    ``left`` of the width) returned to add later: only the originals' crop windows find them."""
    root.mkdir(parents=True, exist_ok=True)
    later = {}
    for p in PHOTOS:
        im = load_rgb(p)
        w, h = im.size
        (root / f"{p.stem}.jpg").write_bytes(encode(im, quality=92))
        (root / f"{p.stem}_mirror.jpg").write_bytes(encode(ImageOps.mirror(im), quality=88))
        x0 = int(w * left)
        later[f"{p.stem}_corner.jpg"] = encode(im.crop((x0, 0, x0 + w * 80 // 100, h * 82 // 100)), quality=88)
    return later


def group_shape(result: neardup.ScanResult) -> list[tuple[str, list[str]]]:
    """Groups as (keeper, sorted members), sorted: two scans that agree give equal shapes."""
    return sorted((g.keep, sorted(g.members)) for g in result.groups)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def shape_of(result: neardup.ScanResult, base: str) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """Groups (keeper, members) and failures with paths relative to ``base``: comparable
    between a local folder and a bucket."""
    def rel(p: str) -> str:
        assert p.startswith(base), (p, base)
        return p[len(base):].lstrip("/")

    groups = sorted((rel(g.keep), sorted(rel(m) for m in g.members)) for g in result.groups)
    failures = sorted((rel(f.path), f.reason) for f in result.failures)
    return groups, failures


# -- a real browser for the review page ------------------------------------------------
def _chromium() -> str:
    found = os.environ.get("NEARDUP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        if os.environ.get("NEARDUP_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium and playwright are required here (NEARDUP_REQUIRE_SERVICES=1)")
        pytest.skip("needs Debian's chromium and pip's playwright (run .ci/run)")
    return found


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()
