"""The command line: exit codes, outputs, clear errors for bad flags, lean imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from neardup.cli.main import EXIT_FAILURES, main

from .conftest import PHOTOS


def _folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for p in PHOTOS:
        shutil.copy(p, d / p.name)
    shutil.copy(PHOTOS[0], d / "again.jpg")
    return d


def test_scan_writes_results_and_csv(tmp_path):
    d = _folder(tmp_path)
    out, pairs = tmp_path / "r.json", tmp_path / "p.csv"
    res = CliRunner().invoke(main, ["scan", str(d), "-o", str(out), "--csv", str(pairs), "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert [sorted(g["members"]) for g in r["groups"]] == [sorted([str(d / PHOTOS[0].name), str(d / "again.jpg")])]
    assert pairs.read_text().splitlines()[0] == "a,b,stage,distance,score,keep,kind"


def test_failures_give_their_own_exit_status(tmp_path):
    d = _folder(tmp_path)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (d / "empty.png").write_bytes(b"")
    res = CliRunner().invoke(main, ["scan", str(d), "-o", str(tmp_path / "r.json"), "--no-cache", "-q"])
    assert res.exit_code == EXIT_FAILURES, res.output
    fails = {f["path"].rsplit("/", 1)[1]: f for f in json.loads((tmp_path / "r.json").read_text())["failures"]}
    assert set(fails) == {"broken.jpg", "empty.png"}
    assert fails["empty.png"]["reason"] == "empty-file"


def test_bad_flag_says_what_to_change(tmp_path):
    res = CliRunner().invoke(main, ["scan", str(tmp_path), "--radius", "40"])
    assert res.exit_code == 2 and "--radius" in res.output and "0<=x<=16" in res.output


def test_eval_scores_a_result(tmp_path):
    d = _folder(tmp_path)
    out = tmp_path / "r.json"
    CliRunner().invoke(main, ["scan", str(d), "-o", str(out), "--no-cache", "-q"])
    truth = tmp_path / "truth.csv"
    rows = ["file,group,role,transform,tier,degraded"] + [f"{p.name},g{i},original,-,-,0" for i, p in enumerate(PHOTOS)]
    rows.append("again.jpg,g0,copy,png,A,0")
    truth.write_text("\n".join(rows) + "\n")
    res = CliRunner().invoke(main, ["eval", str(truth), str(out), "--json"])
    s = json.loads(res.output)
    assert s["precision"] == 1.0 and s["recall"] == 1.0


def test_fast_mode_imports_no_heavy_dependencies(tmp_path):
    d = _folder(tmp_path)
    code = (
        "import sys, neardup; neardup.scan([sys.argv[1]], cache=None, workers=1);"
        "bad = [m for m in ('torch', 'onnxruntime', 'cv2', 'faiss', 'dask') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_eval_scores_a_list_of_true_pairs_with_clashing_names(tmp_path):
    """Kodak's truth is a list of pairs whose two files share a name in different folders."""
    truth = tmp_path / "pairs.csv"
    truth.write_text("path_a,path_b,relation\ngrey/k1.png,colour/k1.png,same\ngrey/k2.png,colour/k2.png,same\n")
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"groups": [
        {"keep": "/d/colour/k1.png", "members": ["/d/colour/k1.png", "/d/grey/k1.png"]},
        {"keep": "/d/colour/k2.png", "members": ["/d/colour/k2.png", "/d/colour/k3.png"]}]}))
    out = CliRunner().invoke(main, ["eval", str(truth), str(res), "--json"])
    s = json.loads(out.output)
    assert (s["found"], s["true_pairs"], s["false_pairs"]) == (1, 2, 1)


def test_option_needing_another_says_so_with_status_2(tmp_path):
    res = CliRunner().invoke(main, ["scan", str(tmp_path), "--similar", "-q", "-o", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "--mode thorough" in res.output


def test_a_missing_optional_package_is_a_usage_error_not_a_traceback():
    from neardup.errors import UsageError
    from neardup.sources.cloud import _need

    with pytest.raises(UsageError, match=r"pip install 'neardup\[azure\]'"):
        _need("no_such_parent_pkg.storage.blob", "azure")
