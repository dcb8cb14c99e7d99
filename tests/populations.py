"""Seeded test populations for the failure classes of issue 18: different pictures inside one
shared frame (screenshots of one app, slides of one deck, catalogue templates), and
look-alikes (a small patch on a plain background).  Pure Pillow and NumPy, no files needed:
pictures come from the caller (real photos) or from :func:`texture` (smooth random fields).

Used by ``tests/test_templates.py`` (small, fast) and ``eval/templates.py`` (large, scored).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["Frame", "make_frame", "framed", "texture", "hub", "jpeg_bytes", "png_bytes", "copy_of", "pictures", "inset",
           "slide"]

WORDS = ("like", "share", "reply", "follow", "home", "search", "profile", "more", "news", "photo", "today",
         "friends", "post", "story", "live", "shop", "saved", "trending", "messages", "settings")


def jpeg_bytes(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def texture(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A smooth random colour field with some fine detail: a stand-in for a photograph whose
    every draw is a different picture."""
    w, h = size
    coarse = rng.integers(0, 256, (rng.integers(3, 9), rng.integers(3, 9), 3), dtype=np.uint8)
    im = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(im, dtype=np.float32)
    fine = rng.normal(0, rng.uniform(4, 20), (h // 4 + 1, w // 4 + 1, 1)).astype(np.float32)
    fine_im = np.asarray(Image.fromarray(np.clip(fine[..., 0] + 128, 0, 255).astype(np.uint8))
                         .resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)[..., None] - 128
    return Image.fromarray(np.clip(arr + fine_im, 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class Frame:
    """A template: the canvas around a picture slot, and what changes per image (a count, a name)."""

    canvas: Image.Image
    slot: tuple[int, int, int, int]  # left, top, right, bottom of the picture
    dynamic: tuple[int, int]  # where the per-image text goes
    ink: tuple[int, int, int]

    @property
    def frame_share(self) -> float:
        left, top, right, bottom = self.slot
        return 1.0 - (right - left) * (bottom - top) / (self.canvas.width * self.canvas.height)


def make_frame(seed: int, *, frame_share: float | None = None) -> Frame:
    """One app-like frame: a background, bars, avatar, icons and text lines, with a picture
    slot covering ``1 - frame_share`` of the canvas (drawn in 0.40-0.85 when not given)."""
    r = random.Random(seed)
    w = r.choice([480, 540, 600, 720, 800])
    h = int(w * r.uniform(0.75, 2.0))
    dark = r.random() < 0.3
    bg = tuple(r.randint(10, 50) for _ in range(3)) if dark else tuple(r.randint(215, 255) for _ in range(3))
    ink = (230, 230, 230) if dark else (r.randint(0, 60),) * 3
    accent = tuple(r.randint(0, 255) for _ in range(3))
    canvas = Image.new("RGB", (w, h), bg)  # type: ignore[arg-type]
    if r.random() < 0.4:  # a soft gradient background
        grad = np.linspace(0, r.uniform(-40, 40), h, dtype=np.float32)[:, None, None]
        canvas = Image.fromarray(np.clip(np.asarray(canvas, np.float32) + grad, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(canvas)
    share = frame_share if frame_share is not None else r.uniform(0.40, 0.85)
    area = (1.0 - share) * w * h
    aspect = r.uniform(0.6, 1.6)
    sw = int(min(w * 0.96, (area * aspect) ** 0.5))
    sh = int(min(h * 0.9, area / max(sw, 1)))
    sw = int(min(w * 0.96, area / max(sh, 1)))
    left = r.randint(0, w - sw)
    top = r.randint(int(h * 0.05), max(int(h * 0.05), h - sh - int(h * 0.05)))
    bar = int(h * r.uniform(0.05, 0.09))
    d.rectangle((0, 0, w, bar), fill=accent)  # type: ignore[arg-type]
    d.text((w * 0.05, bar * 0.3), r.choice(WORDS).upper(), fill=(255, 255, 255))
    # the app's furniture around the slot: avatar, name lines, icon row, body text
    for _ in range(r.randint(6, 16)):
        x, y = r.randint(0, w - 20), r.randint(bar, h - 12)
        if left - 4 < x < left + sw + 4 and top - 12 < y < top + sh + 4:
            continue
        kind = r.random()
        if kind < 0.25:
            rad = r.randint(6, 22)
            d.ellipse((x, y, x + 2 * rad, y + 2 * rad), fill=tuple(r.randint(0, 255) for _ in range(3)))  # type: ignore[arg-type]
        elif kind < 0.5:
            d.rectangle((x, y, min(w, x + r.randint(30, 200)), y + r.randint(4, 10)), fill=ink)  # type: ignore[arg-type]
        else:
            d.text((x, y), " ".join(r.sample(WORDS, r.randint(1, 4))), fill=ink)  # type: ignore[arg-type]
    d.rectangle((0, h - bar, w, h), fill=bg if r.random() < 0.5 else accent)  # type: ignore[arg-type]
    for k in range(r.randint(3, 5)):
        cx = int(w * (k + 0.5) / 5)
        d.ellipse((cx - 9, h - bar // 2 - 9, cx + 9, h - bar // 2 + 9), outline=ink, width=2)  # type: ignore[arg-type]
    dyn = (r.randint(0, max(0, w - 80)), max(bar + 2, top - 14) if top > bar + 16 else min(h - bar - 14, top + sh + 3))
    return Frame(canvas, (left, top, left + sw, top + sh), dyn, ink)  # type: ignore[arg-type]


def framed(frame: Frame, picture: Image.Image, *, label: str = "", fit: str = "cover") -> Image.Image:
    """``picture`` shown in ``frame``'s slot, with a per-image ``label``: cover-fitted (cropped
    to the slot's shape, as feeds show photos), or with ``fit="contain"`` whole, centred in
    the slot on the frame's background (as a post shows a photo of another shape)."""
    left, top, right, bottom = frame.slot
    pic = picture.convert("RGB")
    sw, sh = right - left, bottom - top
    out = frame.canvas.copy()
    if fit == "contain":
        scale = min(sw / pic.width, sh / pic.height)
        pic = pic.resize((max(8, round(pic.width * scale)), max(8, round(pic.height * scale))), Image.Resampling.LANCZOS)
        out.paste(pic, (left + (sw - pic.width) // 2, top + (sh - pic.height) // 2))
        if label:
            ImageDraw.Draw(out).text(frame.dynamic, label, fill=frame.ink)
        return out
    scale = max(sw / pic.width, sh / pic.height)
    pic = pic.resize((max(sw, round(pic.width * scale)), max(sh, round(pic.height * scale))), Image.Resampling.LANCZOS)
    ox, oy = (pic.width - sw) // 2, (pic.height - sh) // 2
    out.paste(pic.crop((ox, oy, ox + sw, oy + sh)), (left, top))
    if label:
        ImageDraw.Draw(out).text(frame.dynamic, label, fill=frame.ink)
    return out


def inset(picture: Image.Image, backdrop: Image.Image | None, rng: np.random.Generator, *,
          share: float | None = None, size: tuple[int, int] | None = None) -> Image.Image:
    """``picture`` whole, shrunk to ``share`` of the canvas width (0.35-0.8 unless given), pasted
    anywhere on ``backdrop`` (stretched to the canvas) or on a plain light canvas: a collage, a
    photo in a document, a picture-in-picture."""
    pic = picture.convert("RGB")
    w, h = size or pic.size
    canvas = (backdrop.convert("RGB").resize((w, h), Image.Resampling.BILINEAR) if backdrop is not None
              else Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 256, 3))))  # type: ignore[arg-type]
    s = share if share is not None else float(rng.uniform(0.35, 0.8))
    pw = max(8, int(w * s))
    ph = max(8, min(h - 2, int(pw * pic.height / pic.width)))
    pw = max(8, int(ph * pic.width / pic.height))
    small = pic.resize((pw, ph), Image.Resampling.LANCZOS)
    canvas.paste(small, (int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))))
    return canvas


def slide(picture: Image.Image, rng: np.random.Generator, *, size: tuple[int, int] = (1024, 576)) -> Image.Image:
    """``picture`` whole on a presentation slide: a title bar, bullet lines beside it, the
    picture at 40-60% of the slide's width."""
    w, h = size
    bg = tuple(int(v) for v in rng.integers(225, 256, 3))
    out = Image.new("RGB", (w, h), bg)  # type: ignore[arg-type]
    d = ImageDraw.Draw(out)
    bar = int(h * 0.15)
    d.rectangle((0, 0, w, bar), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))  # type: ignore[arg-type]
    d.text((int(w * 0.05), bar // 3), " ".join(str(rng.choice(WORDS)) for _ in range(3)).upper(), fill=(255, 255, 255))
    pic = picture.convert("RGB")
    pw = int(w * rng.uniform(0.4, 0.6))
    ph = min(h - bar - 20, int(pw * pic.height / pic.width))
    pw = int(ph * pic.width / pic.height)
    left = bool(rng.random() < 0.5)
    x = int(w * 0.04) if left else w - pw - int(w * 0.04)
    out.paste(pic.resize((pw, ph), Image.Resampling.LANCZOS), (x, bar + (h - bar - ph) // 2))
    tx = x + pw + 20 if left else int(w * 0.05)
    for k in range(int(rng.integers(3, 6))):
        d.text((tx, bar + 30 + 40 * k), "- " + " ".join(str(rng.choice(WORDS)) for _ in range(4)), fill=(40, 40, 40))
    return out


def hub(rng: np.random.Generator, picture: Image.Image, *, size: tuple[int, int] = (640, 480),
        side_share: float | None = None, background: tuple[int, int, int] | None = None) -> Image.Image:
    """A look-alike: a patch of ``picture`` (5-40% of the canvas side unless given) somewhere
    on a plain, near-white or coloured background."""
    w, h = size
    share = side_share if side_share is not None else float(rng.uniform(0.05, 0.40))
    side = max(4, int(min(w, h) * share))
    bg = background or tuple(int(v) for v in (rng.integers(235, 256, 3) if rng.random() < 0.7
                                              else rng.integers(0, 256, 3)))
    canvas = Image.new("RGB", size, bg)  # type: ignore[arg-type]
    if rng.random() < 0.5:  # not quite plain (a scan, a photographed sheet): no border to trim
        grain = rng.normal(0, 2.0, (h, w, 1)) + np.linspace(0, float(rng.uniform(-12, 12)), w)[None, :, None]
        canvas = Image.fromarray(np.clip(np.asarray(canvas, np.float32) + grain, 0, 255).astype(np.uint8))
    pic = picture.convert("RGB")
    x0 = int(rng.integers(0, max(1, pic.width - side)))
    y0 = int(rng.integers(0, max(1, pic.height - side)))
    patch = pic.crop((x0, y0, x0 + side, y0 + side)) if min(pic.size) > side else pic.resize((side, side))
    canvas.paste(patch, (int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))))
    return canvas


def copy_of(im: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, int, str]:
    """A true copy a user would want found: resized, re-saved, captioned or lightly edited.
    Returns the image, the JPEG quality to save it at, and what was done."""
    kind = str(rng.choice(["resave", "resize", "caption", "sharpen"]))
    out = im
    if kind == "resize":
        s = float(rng.uniform(0.5, 0.85))
        out = im.resize((max(8, int(im.width * s)), max(8, int(im.height * s))), Image.Resampling.LANCZOS)
    elif kind == "caption":
        out = im.copy()
        d = ImageDraw.Draw(out)
        d.text((int(im.width * 0.1), int(im.height * float(rng.uniform(0.1, 0.8)))), "so true", fill=(255, 0, 0))
    elif kind == "sharpen":
        out = im.filter(ImageFilter.SHARPEN)
    return out, int(rng.integers(55, 90)), kind


def pictures(pool: Sequence[Image.Image], rng: np.random.Generator, n: int,
             size: tuple[int, int] = (400, 300)) -> list[Image.Image]:
    """``n`` different pictures: distinct photos of the ``pool`` (whole: two crops of one photo
    would be true duplicates), else textures when the pool is empty."""
    if not pool:
        return [texture(rng, size) for _ in range(n)]
    if n > len(pool):
        raise ValueError(f"{n} distinct pictures asked of a pool of {len(pool)} photos")
    return [pool[int(i)] for i in rng.choice(len(pool), n, replace=False)]


Writer = Callable[[str, bytes], None]
