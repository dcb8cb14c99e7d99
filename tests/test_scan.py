"""End-to-end scans on real labelled data: imagededup's test set and the dev benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import neardup
from neardup.evaluate import load_truth, score_file

from .conftest import need_shared


@pytest.fixture(scope="module")
def imagededup_result():
    root = need_shared() / "real" / "imagededup"
    return root, neardup.scan([str(root)], cache=None, workers=2)


def _rel(root: Path, p: str) -> str:
    return str(Path(p).relative_to(root))


# alpha_channel_image.png is ukbench00120 with an alpha channel (checked by eye): a true copy
# that GROUND_TRUTH.json lists only as a format fixture.
SAME_AS = {"ukbench00120": {"alpha_channel_image.png"}}
# The 30-degree rotation with black corners is a heavy edit the fast hashes cannot see;
# thorough mode (issue 3) is meant to catch it.
FAST_MODE_MISSES = {"mixed_images/ukbench00120_rotation.jpg", "mixed_nested_images/lvl1/lvl2a/ukbench00120_rotation.jpg"}


def _truth_groups(root: Path):
    truth = json.loads((root / "GROUND_TRUTH.json").read_text())
    return [g for g in truth["groups"] if not g["id"].startswith("holidays")], truth


def test_imagededup_groups_are_found_whole_except_heavy_rotation(imagededup_result):
    root, result = imagededup_result
    groups, truth = _truth_groups(root)
    found = [{_rel(root, m) for m in g.members} for g in result.groups]
    for g in groups:
        files = set(g["files"]) - FAST_MODE_MISSES
        match = [f for f in found if files <= f]
        assert match, f"group {g['id']} not found whole"
        assert match[0] - files <= SAME_AS.get(g["id"], set()), f"group {g['id']} has extra members"
    holidays = set(next(g for g in truth["groups"] if g["id"].startswith("holidays"))["files"])
    assert not any(holidays <= f for f in found), "the Holidays pair (another shot, not a copy) was grouped"


@pytest.mark.xfail(strict=True, reason="fast mode misses the 30-degree rotation; thorough mode (issue 3)")
def test_imagededup_heavy_rotation_found(imagededup_result):
    root, result = imagededup_result
    found = [{_rel(root, m) for m in g.members} for g in result.groups]
    assert any(FAST_MODE_MISSES | {"base_images/ukbench00120.jpg"} <= f for f in found)


def test_imagededup_corrupt_files_are_failures(imagededup_result):
    root, result = imagededup_result
    truth = json.loads((root / "GROUND_TRUTH.json").read_text())
    failed = {_rel(root, f.path): f for f in result.failures}
    for c in truth["corrupt_files"]:
        assert c in failed and failed[c].stage == "decode" and failed[c].error
    assert not any(f.reason == "internal-error" for f in result.failures)


def test_imagededup_distinct_objects_stay_apart(imagededup_result):
    root, result = imagededup_result
    base = {f"base_images/{p.name}" for p in (root / "base_images").iterdir()}
    for g in result.groups:
        assert len(base & {_rel(root, m) for m in g.members}) <= 1


def test_results_json_contract(imagededup_result):
    _, result = imagededup_result
    d = json.loads(result.to_json())
    assert set(d) >= {"groups", "failures", "stats"}
    for g in d["groups"]:
        assert g["keep"] in g["members"] and g["reason"]
        for p in g["pairs"]:
            assert {"a", "b", "stage"} <= set(p) and ("distance" in p or "score" in p)
    for f in d["failures"]:
        assert {"path", "stage", "error"} <= set(f)
    s = d["stats"]
    assert {"images", "decoded", "from_cache", "failed", "candidate_pairs", "verified_pairs", "stages"} <= set(s)
    for st in s["stages"].values():
        assert {"seconds", "peak_rss_mb"} <= set(st)
    # the install built the compiled search loop (pip does where a C compiler is, as on CI); a
    # NumPy-only install says "numpy" here, which is what a user of a slow scan should look at
    assert s["search_loop"] == "compiled"


@pytest.fixture(scope="module")
def devset(tmp_path_factory):
    bench = need_shared()
    out = tmp_path_factory.mktemp("devset")
    subprocess.run([sys.executable, str(bench / "make_benchmark.py"), "--photos", str(bench / "photos" / "bsds500"),
                    "--out", str(out), "--seed", "1"], check=True, capture_output=True)
    return out


def test_devset_accuracy_at_defaults(devset, tmp_path):
    """The issue's bar: pair precision >= 0.995 and tier-A copy recall >= 0.90, no negative groups."""
    result = neardup.scan([str(devset / "images")], cache=None, workers=2)
    out = tmp_path / "results.json"
    out.write_text(result.to_json())
    truth = load_truth(str(devset / "truth.csv"))
    s = score_file(truth, str(out))
    assert s["precision"] >= 0.995, s
    assert s["copy_recall"]["tier A"] >= 0.90, s
    roles = {r["file"]: r["role"] for r in truth}
    for g in result.groups:
        assert any(roles[Path(m).name] != "negative" for m in g.members), "a group of hard negatives only"


def test_lookalike_hubs_neither_group_nor_explode(tmp_path):
    """Small patches on plain white (the hub population of benchmarks/scale.py) stay apart,
    while re-encoded copies of ordinary pictures among them are still found."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(5)
    for j in range(1500):
        canvas = Image.new("RGB", (96, 72), (255, 255, 255))
        patch = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)).resize((14, 14), Image.Resampling.BICUBIC)
        canvas.paste(patch, (int(rng.integers(10, 70)), int(rng.integers(10, 50))))
        canvas.save(tmp_path / f"hub{j:03d}.jpg", quality=90)
    for j in range(10):
        im = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((96, 72), Image.Resampling.BICUBIC)
        im.save(tmp_path / f"pic{j}.jpg", quality=90)
        im.save(tmp_path / f"pic{j}_copy.jpg", quality=60)
    result = neardup.scan([str(tmp_path)], cache=None, workers=1)
    got = sorted(sorted(Path(m).name for m in g.members) for g in result.groups)
    assert got == [[f"pic{j}.jpg", f"pic{j}_copy.jpg"] for j in range(10)]


def test_result_does_not_depend_on_workers_or_batch_size(imagededup_result):
    root, two_workers = imagededup_result
    one = neardup.scan([str(root)], cache=None, workers=1, batch=7)
    assert [g.to_dict() for g in one.groups] == [g.to_dict() for g in two_workers.groups]
    assert [f.to_dict() for f in one.failures] == [f.to_dict() for f in two_workers.failures]
