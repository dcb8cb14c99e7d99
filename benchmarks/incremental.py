"""Cost of an incremental run: scan 99% of a folder, add the last 1%, scan again (same cache).

    python3 benchmarks/incremental.py /tmp/devset/images [--share 0.01]
    python3 benchmarks/scale.py --n 100000 && python3 benchmarks/incremental.py /tmp/ndscale/v2-100000
    python3 benchmarks/incremental.py /tmp/ndscale/v2-100000 --profile /tmp/incprof   # + cProfile of both reruns
    python3 benchmarks/incremental.py /tmp/ndscale/v2-100000 --passes   # + where the +1% run's search went
    python3 benchmarks/incremental.py /tmp/ndscale/v2-100000 --repeats 5  # medians of 5 (+1% and unchanged)

The files (any tree) are hard-linked into a temporary folder, every ``1/share``-th one held back;
``neardup.scan`` runs in this process with a fresh cache, then again after the held-back files
are linked in, then once more unchanged.  Prints the three wall times, the incremental run's
share of the full run, and the per-stage seconds and counters of the incremental run.  With
``--repeats N`` the +1% and the unchanged run are each made N times, alternating, on a copy of
the cache as the full run left it (the held-back files taken out again in between): medians,
and every figure (this machine's speed drifts by the minute).  With
``--passes``, also the +1% run's seconds in parts of its candidate search: indexes built in
memory, the run snapshot's saved frame, centre and window indexes queried, and the snapshot's
save (timers around those public methods; the rest of the stage is the in-memory queries).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import neardup
from neardup.candidates import MultiIndex
from neardup.pipeline.snapshot import RunSnapshot


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--share", type=float, default=0.01)
    ap.add_argument("--profile", type=Path, default=None,
                    help="also write cProfile stats of the incremental and the unchanged run here (inc.prof, same.prof)")
    ap.add_argument("--passes", action="store_true", help="also time the +1%% run's candidate search by part")
    ap.add_argument("--repeats", type=int, default=1, help="make the +1%% and the unchanged run this many times")
    a = ap.parse_args()
    files = sorted(p for p in a.folder.rglob("*") if p.is_file())
    every = max(2, round(1 / a.share))
    later = files[every - 1 :: every]
    held = set(later)
    with tempfile.TemporaryDirectory(dir=a.folder.parent) as tmp:
        imgs, cache = Path(tmp) / "imgs", Path(tmp) / "cache"

        def link(p: Path) -> None:
            dest = imgs / p.relative_to(a.folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dest)

        for p in files:
            if p not in held:
                link(p)
        t = time.perf_counter()
        neardup.scan([str(imgs)], cache=str(cache))
        full = time.perf_counter() - t
        pristine = Path(tmp) / "cache-after-full"
        if a.repeats > 1:
            shutil.copytree(cache, pristine)
        incs, sames = [], []
        for k in range(a.repeats):
            if k:  # the cache as the full run left it, the new files out again
                shutil.rmtree(cache)
                shutil.copytree(pristine, cache)
                for p in later:
                    (imgs / p.relative_to(a.folder)).unlink()
            for p in later:
                link(p)
            passes = _Passes() if a.passes and not k else None
            r, inc = _timed(imgs, cache, a.profile / "inc.prof" if a.profile and not k else None)
            if passes is not None:
                passes.stop()
            _, same = _timed(imgs, cache, a.profile / "same.prof" if a.profile and not k else None)
            incs.append(inc)
            sames.append(same)
        inc, same = statistics.median(incs), statistics.median(sames)
        snapshot = sum(f.stat().st_size for f in (cache / "runs").rglob("*") if f.is_file())
    print(f"full run, {len(files) - len(later):,} images: {full:.2f} s; +{len(later):,} new "
          f"({len(later) / (len(files) - len(later)):.1%}): {inc:.2f} s = {inc / full:.1%} of the full run "
          f"(decoded {r.stats['decoded']}, searched {r.stats['searched_contents']} contents, reused "
          f"{r.stats['reused_pairs']} pairs); unchanged rerun {same:.2f} s = {same / full:.1%}"
          + (f" (medians of {a.repeats}: +1% {', '.join(f'{x:.2f}' for x in incs)} s; unchanged "
             f"{', '.join(f'{x:.2f}' for x in sames)} s)" if a.repeats > 1 else ""))
    print(json.dumps({name: st["seconds"] for name, st in r.stats["stages"].items()}))
    print(f"run snapshot on disk: {snapshot / 2**20:.0f} MiB ({snapshot / len(files):,.0f} bytes an image)")
    if passes is not None:
        print("+1% run's search by part (s):", json.dumps({k: round(v, 3) for k, v in passes.seconds.items()}))


def _timed(imgs: Path, cache: Path, profile: Path | None) -> tuple[neardup.ScanResult, float]:
    """One scan on the cache, timed (and profiled into ``profile`` when given)."""
    prof = cProfile.Profile() if profile is not None else None
    t = time.perf_counter()
    if prof is not None:
        prof.enable()
    r = neardup.scan([str(imgs)], cache=str(cache))
    wall = time.perf_counter() - t
    if prof is not None and profile is not None:
        prof.disable()
        profile.parent.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(profile)
    return r, wall


class _Passes:
    """Timers around parts of the search (see the module's docstring), installed until stop()."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.saving = False
        self._saved: list[tuple[type, str, Any]] = []
        for name in ("frame_pairs", "centre_pairs", "window_pairs"):
            self._wrap_pass(name, f"saved {name.split('_')[0]} indexes queried")
        passes = self
        build, save = MultiIndex.__init__, RunSnapshot.save

        def built(index: MultiIndex, *args: Any, **kw: Any) -> None:
            t = time.perf_counter()
            build(index, *args, **kw)
            if not passes.saving:  # the snapshot's own indexes count as its save
                passes.seconds["indexes built in memory"] += time.perf_counter() - t

        def saved(snapshot: RunSnapshot, *args: Any, **kw: Any) -> None:
            t, passes.saving = time.perf_counter(), True
            try:
                save(snapshot, *args, **kw)
            finally:
                passes.saving = False
                passes.seconds["snapshot saved"] += time.perf_counter() - t

        self._install(MultiIndex, "__init__", built)
        self._install(RunSnapshot, "save", saved)

    def _install(self, cls: type, name: str, wrapper: Callable[..., Any]) -> None:
        self._saved.append((cls, name, getattr(cls, name)))
        setattr(cls, name, wrapper)

    def _wrap_pass(self, name: str, label: str) -> None:
        original = getattr(RunSnapshot, name)
        passes = self

        def wrapper(*args: Any, **kw: Any) -> Iterator[Any]:
            it = original(*args, **kw)
            while True:  # the consumer's time between batches is not the pass's
                t = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    passes.seconds[label] += time.perf_counter() - t
                    return
                passes.seconds[label] += time.perf_counter() - t
                yield item

        self._install(RunSnapshot, name, wrapper)

    def stop(self) -> None:
        for cls, name, original in reversed(self._saved):
            setattr(cls, name, original)


if __name__ == "__main__":
    main()
