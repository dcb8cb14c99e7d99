"""The ``contains`` stage (thorough mode): a picture shown whole inside another one (an inset, a
slide, a post in an app's frame) is found as a copy of the picture, named ``contains``, and the
container is never its keeper; crops (where the larger image is the original) are not."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neardup
from neardup.actions import plan
from neardup.embed.regions import dequantise_regions, gem, pool_regions, quantise_regions, region_windows
from neardup.features.extract import extract
from neardup.pipeline.thorough import INSET_FLOOR
from neardup.verify.inset import inset_placement
from neardup.verify.local import LocalParams, local_features, match_inset, seam

from .conftest import PHOTOS, encode, load_rgb
from .populations import framed, inset, make_frame, slide


def _grey(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), np.float32)


def _outline(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x - 0.5, y - 0.5], [x + w - 0.5, y - 0.5], [x + w - 0.5, y + h - 0.5], [x - 0.5, y + h - 0.5]])


def test_seam_tells_a_pasted_picture_from_a_crop_outline():
    """Every CC0 photo pasted at 55% on every other: the outline is a seam (>= the bar for a
    shrunk picture); a rectangle of the same size drawn inside the backdrop alone is not."""
    p = LocalParams()
    rng = np.random.default_rng(3)
    for back, pic in itertools.permutations(PHOTOS, 2):
        canvas = load_rgb(back).resize((256, 192))
        small = load_rgb(pic).resize((140, 100))
        x, y = int(rng.integers(10, 100)), int(rng.integers(10, 80))
        pasted = canvas.copy()
        pasted.paste(small, (x, y))
        assert seam(_grey(pasted), _outline(x, y, 140, 100)) >= p.shrunk_seam, (back.name, pic.name)
        assert seam(_grey(canvas), _outline(x, y, 140, 100)) < p.shrunk_seam, back.name


def test_regions_are_gem_pools_of_map_windows_and_survive_eight_bits():
    rng = np.random.default_rng(0)
    fmap = rng.gamma(1.0, 1.0, (2, 16, 7, 7)).astype(np.float32)
    wins = region_windows(7, 7)
    assert len(wins) == 16 + 9  # 4x4 and 5x5 windows of a 7x7 map
    got = pool_regions(fmap)
    for i, (y, x, k) in enumerate(wins):
        want = gem(fmap[:, :, y : y + k, x : x + k])
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        np.testing.assert_allclose(got[:, i], want, rtol=1e-4, atol=1e-5)
    back = dequantise_regions(quantise_regions(got))
    assert ((back * got).sum(axis=-1) > 0.999).all()


def test_inset_placement_finds_a_layout_pasted_whole_and_where():
    for back, pic in itertools.permutations(PHOTOS, 2):
        canvas = load_rgb(back).resize((400, 300))
        small = load_rgb(pic)
        small = small.resize((200, round(200 * small.height / small.width)))
        canvas.paste(small, (120, 40))
        outer, inner = (extract(encode(im, quality=92)) for im in (canvas, load_rgb(pic)))
        score, box = inset_placement(outer.sig[None], inner.sig[None], np.array([4 / 3]),
                                     np.array([inner.width / inner.height]))
        assert score[0] >= INSET_FLOOR, (back.name, pic.name)
        np.testing.assert_allclose(box[0], [0.3, 40 / 300, 0.8, (40 + small.height) / 300], atol=2.5 / 32)


def _features(im: Image.Image) -> tuple[object, object]:
    f = extract(encode(im, quality=90))
    rgb = np.asarray(im.convert("RGB"))
    s = 512 / max(rgb.shape[:2])
    if s < 1:
        rgb = np.asarray(im.convert("RGB").resize((round(im.width * s), round(im.height * s))))
    return f, local_features(rgb, frame=(rgb.shape[1], rgb.shape[0]))


def test_match_inset_accepts_a_shrunk_picture_and_refuses_another():
    """Each CC0 photo inset at half the width on each other one, and on a slide: the check
    aligned by the layout's placement accepts nearly all of them (a smooth sky shrunk onto a
    slide can lose the worst tile), and no other photo at its own best placement."""
    p = LocalParams()
    rng = np.random.default_rng(5)
    accepted, shown = 0, 0
    for back, pic in itertools.permutations(PHOTOS, 2):
        containers = [inset(load_rgb(pic), load_rgb(back), rng, share=0.5, size=(640, 480)), slide(load_rgb(pic), rng)]
        for container in containers:
            (fo, lo), (fi, li) = _features(container), _features(load_rgb(pic))
            _, box = inset_placement(fo.sig[None], fi.sig[None], np.array([fo.width / fo.height]),
                                     np.array([fi.width / fi.height]))
            ev = match_inset(lo, li, tuple(box[0]), p)  # type: ignore[arg-type]
            shown += 1
            accepted += ev.accepted(p) and ev.containment.inside == 1
            for other in PHOTOS:
                if other in (back, pic):
                    continue
                fx, lx = _features(load_rgb(other))
                _, box = inset_placement(fo.sig[None], fx.sig[None], np.array([fo.width / fo.height]),
                                         np.array([fx.width / fx.height]))
                assert not match_inset(lo, lx, tuple(box[0]), p).accepted(p), (pic.name, other.name)  # type: ignore[arg-type]
    assert accepted >= 0.9 * shown


@pytest.fixture(scope="module")
def contained_scan(tmp_path_factory, model_cache):
    """Five CC0 photos; quokka inset on chelsea, rocket on a slide, coffee in an app's frame
    (whole), a 70% crop of grace_hopper; scanned in thorough mode."""
    root = tmp_path_factory.mktemp("contains")
    src = root / "photos"
    src.mkdir()
    rng = np.random.default_rng(7)
    pics = {p.stem: load_rgb(p) for p in PHOTOS}
    for name, im in pics.items():
        (src / f"{name}.jpg").write_bytes(encode(im, quality=92))
    (src / "quokka_on_chelsea.jpg").write_bytes(
        encode(inset(pics["quokka"], pics["chelsea"], rng, share=0.55, size=pics["chelsea"].size), quality=85))
    (src / "rocket_slide.jpg").write_bytes(encode(slide(pics["rocket"], rng), quality=85))
    (src / "coffee_post.jpg").write_bytes(encode(framed(make_frame(4, frame_share=0.55), pics["coffee"], fit="contain"),
                                                 quality=85))
    g = pics["grace_hopper"]
    (src / "grace_hopper_crop.jpg").write_bytes(
        encode(g.crop((g.width // 10, g.height // 8, g.width // 10 + int(g.width * 0.7), g.height // 8 + int(g.height * 0.7))),
               quality=90))
    cache = root / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(Path(model_cache) / "models")
    r = neardup.scan([str(src)], cache=str(cache), workers=2, mode="thorough")
    return r


def _group_of(r, name: str):
    for g in r.groups:
        if any(Path(m).name == name for m in g.members):
            return g
    return None


@pytest.mark.parametrize(("picture", "container"), [("quokka.jpg", "quokka_on_chelsea.jpg"),
                                                     ("rocket.jpg", "rocket_slide.jpg"),
                                                     ("coffee.jpg", "coffee_post.jpg")])
def test_a_container_is_found_named_contains_and_never_kept(contained_scan, picture, container):
    g = _group_of(contained_scan, container)
    assert g is not None and {Path(m).name for m in g.members} == {picture, container}
    assert Path(g.keep).name == picture
    (pair,) = [p for p in g.pairs if {Path(p.a).name, Path(p.b).name} == {picture, container}]
    assert pair.stage == "contains", str(pair.evidence)
    assert Path(str(pair.evidence["container"])).name == container
    assert "inside a larger frame" in g.reason
    assert pair.kind == "contains" and g.kind == "contains" and g.member_kinds()[g.keep] == "copy"
    # apply leaves a container alone by default (--kinds copy); told to act on containers, it
    # acts on the container, never on the picture
    assert not [s for s in plan(contained_scan).steps if Path(s.path).name in (picture, container)]
    steps = plan(contained_scan, kinds=("copy", "contains")).steps
    assert [Path(s.path).name for s in steps if Path(s.path).name in (picture, container)] == [container]


def test_a_backdrop_is_not_a_copy_of_what_was_pasted_on_it(contained_scan):
    g = _group_of(contained_scan, "chelsea.jpg")
    assert g is None or "quokka_on_chelsea.jpg" not in {Path(m).name for m in g.members}


def test_a_crop_is_not_contains_and_the_larger_original_is_kept(contained_scan):
    g = _group_of(contained_scan, "grace_hopper_crop.jpg")
    assert g is not None and Path(g.keep).name == "grace_hopper.jpg"
    assert all(p.stage != "contains" for p in g.pairs)
    assert json.loads(json.dumps(contained_scan.to_dict()))["stats"]["contains_pairs"] >= 1


def test_plan_never_puts_a_container_in_the_keeper_s_place():
    """A person removes the keeper: the member that stays in its place is not the one shown to
    hold it inside a larger frame (when another can stay)."""
    group = {"keep": "/p/photo.jpg", "members": ["/p/photo.jpg", "/p/a_post.jpg", "/p/z_copy.jpg"], "reason": "",
             "pairs": [{"a": "/p/photo.jpg", "b": "/p/a_post.jpg", "stage": "contains",
                        "evidence": {"stage": "contains", "container": "/p/a_post.jpg"}},
                       {"a": "/p/photo.jpg", "b": "/p/z_copy.jpg", "stage": "hash", "distance": 3}],
             "digests": {"/p/photo.jpg": "00", "/p/a_post.jpg": "01", "/p/z_copy.jpg": "02"}}
    decisions = {"remove": ["/p/photo.jpg"], "keep": ["/p/a_post.jpg", "/p/z_copy.jpg"]}
    steps = plan({"groups": [group], "stats": {}}, decisions).steps
    assert [(Path(s.path).name, Path(s.keeper).name) for s in steps] == [("photo.jpg", "z_copy.jpg")]
