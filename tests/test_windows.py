"""The crop windows of features/windows.py: made as the full-frame and centre codes are, each in
its own orientation, and they find crops taken anywhere, in either aspect."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from PIL import Image, ImageOps

from neardup.config import CROP_NCC
from neardup.features import loops, windows
from neardup.features.extract import extract
from neardup.features.hashes import variant_hashes
from neardup.features.orient import INVERSE, canonical_variant, canonical_variants, compose, orient_layouts
from neardup.verify import rules
from neardup.verify.rules import crop_match, crop_variant, tilt_accepted

from .conftest import PHOTOS, encode, load_rgb


def test_the_centre_window_made_from_the_layout_is_the_stored_centre_code():
    for p in PHOTOS:
        f = extract(p.read_bytes())
        block = windows.window_blocks(f.sig[None], (windows.Window(2, 2, 28, 28),))[0]
        code = variant_hashes(block)[0, f.canon, 0]
        assert int(np.bitwise_count(np.uint64(code) ^ f.c64[f.canon])) <= 2, p.name


def test_a_window_code_is_its_block_in_its_own_canonical_orientation():
    f = extract(PHOTOS[0].read_bytes())
    codes = windows.window_codes(f.sig[None])[0]
    every = windows.window_variant_codes(f.sig[None])[0]  # (W, 8)
    assert all(codes[j] in every[j] for j in range(len(windows.WINDOWS)))
    # a mirrored layout has mirrored windows: the same codes, the window family being symmetric
    mirrored = windows.window_codes(f.sig[None, :, ::-1].copy())[0]
    assert len(set(codes.tolist()) & set(mirrored.tolist())) >= len(codes) // 2


CORNERS = {"top-left": (0.0, 0.0), "bottom-right": (1.0, 1.0), "top-right, wide": (1.0, 0.0), "left edge, tall": (0.0, 0.5)}


def _crop_case(photo, corner, mirror):
    im = load_rgb(photo)
    if mirror:  # the windows take their own orientation, whatever the stored one
        im = ImageOps.mirror(im)
    fx, fy = {"top-right, wide": (0.92, 0.83), "left edge, tall": (0.84, 0.93)}.get(corner, (0.86, 0.86))
    w, h = int(im.width * fx), int(im.height * fy)
    ax, ay = CORNERS[corner]
    x, y = int((im.width - w) * ax), int((im.height - h) * ay)
    return extract(encode(im, quality=90)), extract(encode(im.crop((x, y, x + w, y + h)), quality=85))


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("corner", list(CORNERS))
@pytest.mark.parametrize("mirror", [False, True])
def test_a_crop_anywhere_is_within_the_radius_of_a_window(photo, corner, mirror):
    original, crop = _crop_case(photo, corner, mirror)
    # as the search has them: the original queries its windows; the crop is indexed by its
    # canonical code and its alternatives'
    codes = windows.window_codes(original.sig[None])[0]
    indexed = np.array([crop.p64[v] for v in [crop.canon] + [v for v in range(8) if crop.alt_mask >> v & 1]])
    best_window = int(np.bitwise_count(codes[:, None] ^ indexed[None, :]).min())
    assert best_window <= 8, best_window


def test_most_such_crops_pass_the_crop_test_in_the_orientation_it_picks():
    # a rate, not every case: on 32x32 layouts a textured crop (fur, foliage) can fit at 0.94,
    # under the bar; 34 of these 40 pass (eval/crops.py: 0.89 of >= 80% crops of other photos).
    # Taking the orientation from the full frames alone, 22 of 40 pass.
    cases = [_crop_case(p, c, m) for p in PHOTOS for c in CORNERS for m in (False, True)]
    sa, sb = np.stack([o.sig for o, _ in cases]), np.stack([c.sig for _, c in cases])
    variant = crop_variant(sa, sb, np.stack([o.p64 for o, _ in cases]), np.stack([c.p64 for _, c in cases]))
    ncc = crop_match(sa, sb, variant).ncc
    passed = (ncc >= CROP_NCC) & rules.crop_explains(sa, sb, variant, ncc)
    assert passed.mean() >= 0.8, passed.mean()


def test_the_hinted_search_gives_each_pair_the_same_verdict_in_any_batch(monkeypatch):
    """The hinted search runs HINT_BATCH pairs at a time to bound its memory: the crops (and,
    paired with other photos' crops, look-alikes) must get the same score, side and placement
    whether the batch holds 3 pairs or all of them (to the last bits of its products)."""
    cases = [_crop_case(p, c, m) for p in PHOTOS for c in CORNERS for m in (False, True)]
    sa = np.stack([o.sig for o, _ in cases] * 2)
    sb = np.stack([c.sig for _, c in cases] + [c.sig for _, c in cases[7:] + cases[:7]])
    pa, pb = np.stack([o.p64 for o, _ in cases] * 2), np.stack([c.p64 for _, c in cases] + [c.p64 for _, c in cases[7:] + cases[:7]])
    variant, hint = rules.crop_hypothesis(sa, sb, pa, pb)
    monkeypatch.setattr(rules, "HINT_BATCH", 3)
    small = crop_match(sa, sb, variant, hint=hint)
    monkeypatch.setattr(rules, "HINT_BATCH", 10_000)
    whole = crop_match(sa, sb, variant, hint=hint)
    assert (whole.ncc >= rules.COARSE_BAR).sum() >= len(cases)  # the hinted search ran on most of them
    # the products' rounding may differ in the last bit with the batch's size (as a queue's
    # flush already varies with the search's order), nothing more
    np.testing.assert_allclose(small.ncc, whole.ncc, rtol=0, atol=1e-12)
    assert np.array_equal(small.inside_a, whole.inside_a) and np.array_equal(small.where, whole.where)


def test_no_layouts_no_codes():
    assert windows.window_codes(np.zeros((0, 32, 32), np.uint8)).shape == (0, len(windows.WINDOWS))


def _tilted(im, degrees, *, same_aspect):
    out = im.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)
    t = math.radians(abs(degrees))
    if same_aspect:  # a straighten tool: the largest centred rectangle of the same shape
        f = min(1 / (math.cos(t) + math.sin(t) * im.height / im.width), 1 / (math.cos(t) + math.sin(t) * im.width / im.height))
        w, h = int(im.width * f), int(im.height * f)
    else:  # the corner wedges cut away on both axes
        w, h = int(im.width - 2 * im.height * math.sin(t)), int(im.height - 2 * im.width * math.sin(t))
    x, y = (im.width - w) // 2, (im.height - h) // 2
    return out.crop((x, y, x + w, y + h))


TILT_CASES = [(p, d, s) for p in PHOTOS for d in (-6.0, -3.5, 2.0, 4.5, 7.0) for s in (True, False)]


def _tilt_cases():
    originals, copies = [], []
    for photo, degrees, same in TILT_CASES:
        im = load_rgb(photo)
        originals.append(extract(encode(im, quality=90)))
        copies.append(extract(encode(_tilted(im, degrees, same_aspect=same), quality=85)))
    return originals, copies


def _tilt_test(originals, copies):
    """Accepted as the verifier does: by the crop test, else by the tilt test."""
    sa, sb = np.stack([o.sig for o in originals]), np.stack([c.sig for c in copies])
    pa, pb = np.stack([o.p64 for o in originals]), np.stack([c.p64 for c in copies])
    variant = crop_variant(sa, sb, pa, pb)
    match = crop_match(sa, sb, variant)
    by_crop = (match.ncc >= CROP_NCC) & rules.crop_explains(sa, sb, variant, match.ncc)
    by_crop &= ~rules.framed_crop(sa, sb, variant, match)
    tilted, _ = tilt_accepted(sa, sb, np.array([o.width / o.height for o in originals]),
                              np.array([c.width / c.height for c in copies]), pa, pb, CROP_NCC, untilted=match.ncc)
    return by_crop | tilted


def test_tilted_copies_are_found_and_pass_the_tilt_test():
    # the tilted frames' codes must find every case (the search), and the tilt test accept most:
    # not every one, a textured picture can fit under the bar on 32x32 layouts (measured: 49 of 50
    # found, 41 of 50 accepted by the crop test or the tilt test, the same without TILT_GAIN; the
    # crop test alone accepts 19 of 50, the smallest tilts)
    found = []
    originals, copies = [], []
    for photo, degrees, same in TILT_CASES:
        im = load_rgb(photo)
        original = extract(encode(im, quality=90))
        copy = extract(encode(_tilted(im, degrees, same_aspect=same), quality=85))
        codes = np.concatenate([windows.window_codes(original.sig[None])[0],
                                windows.tilt_codes(original.sig[None], np.array([original.width / original.height]))[0]])
        indexed = np.array([copy.p64[v] for v in [copy.canon] + [v for v in range(8) if copy.alt_mask >> v & 1]])
        found.append(int(np.bitwise_count(codes[:, None] ^ indexed[None, :]).min()) <= 8)
        originals.append(original)
        copies.append(copy)
    assert np.mean(found) >= 0.9, np.mean(found)
    assert _tilt_test(originals, copies).mean() >= 0.75


def test_the_half_step_refinement_finds_tilts_between_the_searched_angles(monkeypatch):
    originals, copies = _tilt_cases()
    refined = int(_tilt_test(originals, copies).sum())
    monkeypatch.setattr(rules, "TILT_REFINE", 0.0)  # the refinement retries the same angle
    assert refined > int(_tilt_test(originals, copies).sum())


def test_different_photos_do_not_pass_the_tilt_test():
    feats = [extract(encode(load_rgb(p), quality=90)) for p in PHOTOS]
    pairs = [(i, j) for i in range(len(feats)) for j in range(len(feats)) if i != j]
    a, b = [feats[i] for i, _ in pairs], [feats[j] for _, j in pairs]
    ok, _ = tilt_accepted(np.stack([f.sig for f in a]), np.stack([f.sig for f in b]),
                          np.array([f.width / f.height for f in a]), np.array([f.width / f.height for f in b]),
                          np.stack([f.p64 for f in a]), np.stack([f.p64 for f in b]), CROP_NCC)
    assert not ok.any()


def test_turns_compose_as_the_layouts_turn():
    # crop_variant and the tilt test read b's orientation as one turn followed by another
    layout = np.arange(32 * 32, dtype=np.float32).reshape(1, 32, 32)
    for first in range(8):
        for second in range(8):
            twice = orient_layouts(orient_layouts(layout, np.array([first])), np.array([second]))
            assert np.array_equal(twice, orient_layouts(layout, compose(np.array([first]), np.array([second]))))
        assert np.array_equal(orient_layouts(orient_layouts(layout, np.array([first])), INVERSE[[first]]), layout)


def test_canonical_variant_is_the_canon_of_canonical_variants():
    blocks = np.random.default_rng(3).normal(size=(500, 8, 8))
    assert np.array_equal(canonical_variant(blocks), canonical_variants(blocks)[0])


def test_the_tilt_hypothesis_from_the_stored_codes_is_the_one_made_from_the_layouts():
    # the verifier picks the tilt from the codes the extractor stored and tilts only that view;
    # it must be the view, orientation and side that tilting every view of both images picks
    originals, copies = _tilt_cases()
    pairs = list(zip(originals, copies)) + list(zip(copies, originals)) + list(zip(originals, copies[1:] + copies[:1]))
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    sa, sb = np.stack([f.sig for f in a]).astype(np.float32), np.stack([f.sig for f in b]).astype(np.float32)
    asp_a, asp_b = np.array([f.width / f.height for f in a]), np.array([f.width / f.height for f in b])
    pa, pb = np.stack([f.p64 for f in a]), np.stack([f.p64 for f in b])
    tilt = slice(len(windows.WINDOWS), windows.WINDOW_CODES)
    stored = rules.tilt_views(sa, sb, asp_a, asp_b, pa, pb, np.stack([f.windows[tilt] for f in a]),
                              np.stack([f.windows[tilt] for f in b]))
    made = rules.tilt_views(sa, sb, asp_a, asp_b, pa, pb)
    assert (stored.variant == made.variant).all() and (stored.b_tilted == made.b_tilted).all()
    assert (stored.view == made.view).all()
    assert np.array_equal(stored.view_a, made.view_a) and np.array_equal(stored.view_b, made.view_b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_coarse_pass_scores_as_the_fft_correlation_does(seed):
    """best_inside_coarse (direct, float32) must give the FFT correlation's best score on every
    size of the grid: crops of a photo's layout (high scores, where the coarse bar decides) and
    unrelated layouts, flat ones included (no template: -1)."""
    rng = np.random.default_rng(seed)
    photo = load_rgb(PHOTOS[seed % len(PHOTOS)]).convert("L")
    big, small = [], []
    for _ in range(40):
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        big.append(np.asarray(photo.resize((16, 16), Image.Resampling.BOX), np.float32))
        small.append(np.asarray(photo.crop((x, y, x + cw, y + ch)).resize((16, 16), Image.Resampling.BOX), np.float32))
    big.append(rng.uniform(0, 255, (16, 16)).astype(np.float32))
    small.append(np.full((16, 16), 77.0, np.float32))
    flat = np.full((16, 16), 250.0, np.float32)  # a white background: no correlation, not noise
    flat[:4, :4] = 10.0
    big.append(flat)
    small.append(small[0])
    big, small = np.stack(big), np.stack(small)
    sizes = [(round(16 * fy), round(16 * fx)) for fy in rules.CROP_SCALES for fx in rules.CROP_SCALES][:-1]
    want = rules.best_inside_batch(big, small, sizes)
    got = rules.best_inside_coarse(big, small, sizes)
    assert want[:-2].max() > rules.COARSE_BAR  # the crops reach the bar: the comparison matters there
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_crop_queue_tests_beside_its_caller_and_reads_the_store_on_the_callers_thread():
    """A full batch is tested on the queue's own thread while the caller goes on: the verdicts
    are those of one batch tested at the end, and every read of the store (layouts, the crop
    memo) and every write to it happens on the caller's thread, which owns the store."""
    cases = [_crop_case(p, c, m) for p in PHOTOS for c in CORNERS for m in (False, True)]
    n = len(cases)
    sigs = np.stack([o.sig for o, _ in cases] + [c.sig for _, c in cases])  # originals, then crops
    p64 = np.stack([o.p64 for o, _ in cases] + [c.p64 for _, c in cases])
    # each original with its own crop, and with another photo's crop (a look-alike the test refuses)
    a = np.r_[np.arange(n), np.arange(n)]
    b = np.r_[n + np.arange(n), n + np.roll(np.arange(n), 2 * len(CORNERS))]  # the next photo's
    seen: list[threading.Thread] = []
    memo: dict[tuple[int, int], float] = {}

    class Memo:
        def get(self, x, y):
            seen.append(threading.current_thread())
            return np.array([memo.get(k, np.nan) for k in zip(x.tolist(), y.tolist())], np.float32)

        def put(self, x, y, ncc):
            seen.append(threading.current_thread())
            memo.update(zip(zip(x.tolist(), y.tolist()), ncc.tolist()))

    def load_sigs(rows):
        seen.append(threading.current_thread())
        return sigs[rows]

    def verdicts(limit):
        memo.clear()
        queue = rules.CropQueue(load_sigs=load_sigs, params=rules.VerifyParams(), aspect=np.full(2 * n, 1.5),
                                crop_cache=Memo(), limit=limit)
        zeros = np.zeros(len(a))
        for s in range(0, len(a), 5):
            part = slice(s, s + 5)
            queue.add(a[part], b[part], p64[a[part]], p64[b[part]], zeros[part], zeros[part], zeros[part])
        got = queue.flush()
        return sorted(zip(got.a.tolist(), got.b.tolist())), dict(memo)

    beside, memo_beside = verdicts(limit=7)
    at_end, memo_at_end = verdicts(limit=10_000)
    assert beside == at_end and memo_beside.keys() == memo_at_end.keys() == set(zip(a.tolist(), b.tolist()))
    assert len(beside) >= 0.7 * n  # most crops pass (with the queue's frame guard too), no look-alike
    assert all(bb == aa + n for aa, bb in beside)
    assert set(seen) == {threading.current_thread()}


def _layouts_of_many_shapes():
    """Layouts of the CC0 photos and of random textures, with aspects from 1:4 to 4:1."""
    rng = np.random.default_rng(11)
    real = [extract(p.read_bytes()) for p in PHOTOS]
    sig = np.concatenate([np.stack([f.sig for f in real]), rng.integers(0, 256, (40, 32, 32), dtype=np.uint8)])
    aspect = np.concatenate([[f.width / f.height for f in real], np.exp(rng.uniform(-1.4, 1.4, 40))])
    return sig, aspect


def test_the_compiled_tilt_loop_gives_numpys_views_bit_for_bit():
    """pixel_loop.c rounds every tap as NumPy does: the same views, so the same codes, whichever
    loop an install has (the feature version does not say which one ran)."""
    if not loops.COMPILED:
        pytest.skip("the pixel loops were not compiled at install (no C compiler)")
    sig, aspect = _layouts_of_many_shapes()
    compiled = windows.tilted_layouts(sig, aspect, engine="compiled")
    reference = windows.tilted_layouts(sig, aspect, engine="numpy")
    assert compiled.dtype == reference.dtype == np.float32
    assert np.array_equal(compiled.view(np.uint32), reference.view(np.uint32))
    # and each layout's views do not depend on the others in its batch
    alone = np.concatenate([windows.tilted_layouts(sig[i : i + 1], aspect[i : i + 1]) for i in range(len(sig))])
    assert np.array_equal(alone.view(np.uint32), compiled.view(np.uint32))


def test_tilted_views_are_the_bilinear_samples_of_a_rotated_frame():
    # a layout that is a linear ramp left to right: turned by an angle it is still a ramp, whose
    # slope down the rows over its slope along them is -tan(angle) (rows count downwards), for
    # both ways of trimming the corners
    ramp = np.tile(np.linspace(40, 200, 32, dtype=np.float32), (32, 1)).astype(np.uint8)
    for engine in ("numpy", "compiled") if loops.COMPILED else ("numpy",):
        views = windows.tilted_layouts(ramp[None], np.array([1.0]), engine=engine)[0]
        for j, deg in enumerate(windows.TILT_ANGLES):
            for trim in (0, 1):
                v = views[2 * j + trim].astype(np.float64)[8:24, 8:24]  # away from the clipped edges
                slope = np.diff(v, axis=0).mean() / np.diff(v, axis=1).mean()
                assert math.isclose(slope, -math.tan(math.radians(deg)), abs_tol=0.002), (engine, deg, trim)


def test_an_unknown_or_missing_tilt_engine_says_what_to_use():
    sig, aspect = _layouts_of_many_shapes()
    with pytest.raises(ValueError, match="'auto', 'numpy' or 'compiled'"):
        windows.tilted_layouts(sig[:1], aspect[:1], engine="fast")  # type: ignore[arg-type]
