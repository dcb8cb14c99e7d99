"""neardup against its peers on one folder, in one run, alternating, medians reported.

    python3 benchmarks/peers/run.py /tmp/devset/images --truth /tmp/devset/truth.csv [--repeats 3]

The peers live in their own virtual environment (``--venv``, made and filled on first use
from the package index: imagehash, pdqhash, czkawka, imagededup, fastdup), so their
dependencies never touch neardup's.  Every tool runs as a separate process on a cold start
(neardup with an empty cache); the run order alternates between repeats.  Per tool: median
images/s, the peak RSS of its whole process tree (sampled every 20 ms from /proc), and pair
precision / recall / F1 against the truth file.  neardup itself runs from a virtual environment
of its own as well (``--neardup-venv``, its base install), so that no tool pays for what the
benchmarking interpreter happens to load at start-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = ["imagehash", "pdqhash", "czkawka", "imagededup", "fastdup", "numpy<2.3", "pillow"]
TOOLS = ["neardup", "imagehash-phash", "pdqhash", "czkawka", "imagededup-phash", "imagededup-whash", "fastdup"]


def _tree_rss_kb(pid: int) -> int:
    """RSS of ``pid`` and all its descendants, in kB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 3):
        err = proc.stderr.read().decode(errors="replace")[-400:] if proc.stderr else ""
        print(f"  failed ({proc.returncode}): {' '.join(cmd[:4])} ... {err}", file=sys.stderr)
    return wall, peak // 1024, proc.returncode


def ensure_venv(venv: Path, packages: list[str]) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages], check=True)
    return py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--truth", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "neardup-peers-venv")
    ap.add_argument("--neardup-venv", type=Path, default=Path(tempfile.gettempdir()) / "neardup-bench-venv",
                    help="neardup runs from its own virtual environment too (base install, editable), so every "
                         "tool starts a clean interpreter")
    ap.add_argument("--tools", default=",".join(TOOLS))
    a = ap.parse_args()
    from neardup.evaluate import load_truth, score_file

    py = ensure_venv(a.venv, PEERS)
    nd_py = ensure_venv(a.neardup_venv, ["-e", str(HERE.parents[1])])
    # as any installed package, neardup runs from cached bytecode: allow writing it (this
    # sandbox sets PYTHONDONTWRITEBYTECODE) and compile it once before anything is timed
    nd_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(nd_py), "-c", "import neardup.pipeline.run, neardup.cli.main"], env=nd_env, check=True)
    tools = a.tools.split(",")
    n_images = sum(1 for p in a.folder.rglob("*") if p.is_file())
    env = dict(os.environ, SENTRY_OPT_OUT="1", PYTHONWARNINGS="ignore")
    walls: dict[str, list[float]] = {t: [] for t in tools}
    peaks: dict[str, list[int]] = {t: [] for t in tools}
    outs: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            order = tools if rep % 2 == 0 else tools[::-1]
            for tool in order:
                out = Path(tmp) / f"{tool}.json"
                if tool == "neardup":
                    cache = Path(tmp) / f"cache-{rep}"
                    cmd = [str(nd_py), "-m", "neardup", "scan", str(a.folder), "-o", str(out), "--cache", str(cache), "-q"]
                else:
                    cmd = [str(py), str(HERE / "tools.py"), tool, str(a.folder), str(out)]
                wall, peak, rc = _run(cmd, dict(nd_env, SENTRY_OPT_OUT="1") if tool == "neardup" else env)
                if rc in (0, 3):
                    walls[tool].append(wall)
                    peaks[tool].append(peak)
                    outs[tool] = out
        truth = load_truth(str(a.truth))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"{n_images:,} files in {a.folder}; {a.repeats} alternating runs, medians")
        print("| tool | images/s | wall s | peak RSS MB (tree) | precision | recall | F1 |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for tool in tools:
            if not walls[tool]:
                print(f"| {tool} | failed | | | | | |")
                continue
            w = statistics.median(walls[tool])
            s = score_file(truth, str(outs[tool]))
            print(f"| {tool} | {n_images / w:,.0f} | {w:.2f} | {max(peaks[tool]):,} | {s['precision']:.3f} | "
                  f"{s['recall']:.3f} | {s['f1']:.3f} |")


if __name__ == "__main__":
    main()
