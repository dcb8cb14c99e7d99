"""Extraction on a real Dask cluster on loopback: same result as a local run, a killed worker
costs nothing but time, an unreachable scheduler is a clear error."""

from __future__ import annotations

import pytest

import neardup
from neardup.errors import NeardupError

from .conftest import make_corpus, shape_of
from .services import DaskScheduler, DaskWorker, free_port


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("dask"), n_extra=8)
    return root, shape_of(neardup.scan([str(root)], cache=None, workers=2), str(root))


@pytest.fixture
def cluster():
    sched = DaskScheduler()
    sched.start()
    workers = [DaskWorker(sched.address) for _ in range(2)]
    try:
        for w in workers:
            w.start()
        yield sched, workers
    finally:
        for w in workers:
            w.stop()
        sched.stop()


def test_scheduler_with_two_workers_gives_the_local_result(corpus, cluster, tmp_path):
    root, local = corpus
    sched, _ = cluster
    r = neardup.scan([str(root)], cache=tmp_path, executor="dask", scheduler=sched.address, batch=8)
    assert shape_of(r, str(root)) == local
    assert r.stats["decoded"] > 0
    again = neardup.scan([str(root)], cache=tmp_path, executor="dask", scheduler=sched.address)
    assert again.stats["read"] == 0 and shape_of(again, str(root)) == local


def test_a_worker_killed_mid_scan_changes_nothing(corpus, cluster):
    root, local = corpus
    sched, workers = cluster
    seen = [0]

    def progress(stage: str, advance: int, total: int | None) -> None:
        if stage == "extract":
            seen[0] += advance
            if seen[0] >= 8 and workers[0].proc is not None:
                workers[0].kill()  # SIGKILL: its tasks in flight are lost and must be run again

    r = neardup.scan([str(root)], cache=None, executor="dask", scheduler=sched.address, batch=8, progress=progress)
    assert workers[0].proc is None, "the worker was not killed mid-scan"
    assert shape_of(r, str(root)) == local


def test_local_cluster_gives_the_local_result(corpus):
    root, local = corpus
    r = neardup.scan([str(root)], cache=None, executor="dask", workers=2, batch=16)
    assert shape_of(r, str(root)) == local


def test_unreachable_scheduler_is_a_clear_error(corpus):
    root, _ = corpus
    addr = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(NeardupError, match=f"cannot reach the Dask scheduler at {addr}"):
        neardup.scan([str(root)], cache=None, executor="dask", scheduler=addr)
    with pytest.raises(neardup.errors.UsageError, match="--executor dask"):
        neardup.scan([str(root)], cache=None, scheduler=addr)


def test_an_image_that_kills_its_worker_is_one_failure(tmp_path):
    """The time budget ends the Dask worker process decoding a 256-MP image; its nanny restarts
    it, the batch fails, its images run one task each, and only that image is a failure."""
    from PIL import Image

    from .conftest import PHOTOS

    root = tmp_path / "slow"
    root.mkdir()
    for p in PHOTOS:
        (root / p.name).write_bytes(p.read_bytes())
    Image.new("L", (16000, 16000), 128).save(root / "huge.png", compress_level=1)
    # every photo shares the culprit's batch, so the scheduler queues some beside it when they run
    # one task each and blames them too when its worker dies: they must still come through
    r = neardup.scan([str(root)], cache=None, executor="dask", workers=2, time_budget=0.1,
                     max_pixels=300_000_000, batch=len(PHOTOS) + 1)
    assert [(f.path.rsplit("/", 1)[1], f.reason) for f in r.failures] == [("huge.png", "worker-killed")]
    assert r.stats["decoded"] == len(PHOTOS)
