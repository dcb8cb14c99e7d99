"""Extraction on a Dask cluster: the same chunks as the local process pool, as Dask tasks.

The driver lists the source and looks up its cache as usual; each chunk of uncached files
becomes one task (batches of ~100 images: a task costs Dask a few milliseconds), which a
worker runs by reading the files itself (a shared file system or cloud URLs) and returning
features only, never pixels.  The driver writes them to its cache as they arrive, exactly as
with local workers, so the result is identical.  At most ``2 * workers`` tasks are in flight,
so the driver's memory stays bounded; a worker that dies loses its tasks, which the scheduler
runs again elsewhere.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import NeardupError, UsageError

if TYPE_CHECKING:
    from ..embed.model import ModelSpec
    from ..pipeline.extract import Chunk, Item

__all__ = ["dask_extract_many", "DASK_BATCH"]

#: images per Dask task: a task costs a few ms of scheduling, a batch of 128 ~0.8 s of work
DASK_BATCH = 128


def _run_batch(items: list[Item], max_pixels: int, spec: ModelSpec | None, retries: int,
               time_budget: float = 0.0) -> Chunk:
    """Runs on a Dask worker: extract one batch with the worker's own reader and model.

    The time budget is an alarm whose default action ends the worker process (its nanny starts
    a new one, the scheduler reruns the batch, then each image alone): only where SIGALRM still
    has its default action, since a task thread cannot install it.
    """
    import signal

    from ..pipeline.extract import current_worker, start_worker

    want = spec.model_id if spec is not None else None
    worker = current_worker()
    if worker is None or worker.model_id != want:
        worker = start_worker(None, spec, retries)
    else:
        from ..sources import configure

        configure(retries=retries)
    worker.time_budget = time_budget if signal.getsignal(signal.SIGALRM) == signal.SIG_DFL else 0.0
    return worker.extract_chunk(items, max_pixels)


def _client(scheduler: str | None, workers: int) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--executor dask needs dask.distributed: pip install 'neardup[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="10s", set_as_default=False), None
        except (OSError, TimeoutError) as e:
            raise NeardupError(f"cannot reach the Dask scheduler at {scheduler}: {e}; check --scheduler and that "
                               "`dask scheduler` is running there") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    return Client(cluster, set_as_default=False), cluster


def dask_extract_many(
    items: Iterable[Item],
    *,
    scheduler: str | None,
    workers: int,
    max_pixels: int,
    model: ModelSpec | None,
    retries: int,
    chunk: int = DASK_BATCH,
    time_budget: float = 0.0,
) -> Generator[Chunk, None, None]:
    """Yield chunks batch by batch, as Dask workers finish them (any order)."""
    from ..pipeline.extract import batched

    client, cluster = _client(scheduler, workers)  # first: a missing dask is a usage error
    from distributed import as_completed

    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        limit = 2 * n_workers
        pending = as_completed(loop=client.loop)
        batches: dict[Any, list[Item]] = {}

        def submit(c: list[Item], single: bool) -> None:
            # pure=False: a rerun of the same batch must run, not be served from a dead worker's memory
            fut = client.submit(_run_batch, c, max_pixels, model, retries, time_budget, pure=False,
                                retries=0 if single else 2)
            batches[fut.key] = c
            pending.add(fut)

        def collect(fut: Any) -> Chunk | None:
            c = batches.pop(fut.key)
            try:
                out: Chunk = fut.result()
            except Exception as e:  # noqa: BLE001 - a task's error (KilledWorker, a worker's bug): rerun its images alone
                fut.release()
                if len(c) > 1:
                    # the batch keeps killing workers (KilledWorker) or failing: run its images one
                    # task each, so one bad image costs one failure row, not the run
                    for it in c:
                        submit([it], True)
                    return None
                path, size, mtime_ns, etag = c[0].path, c[0].size, c[0].mtime_ns, c[0].etag
                from ..pipeline.extract import Chunk, Outcome

                reason = "worker-killed" if type(e).__name__ == "KilledWorker" else "worker-crashed"
                return Chunk.of([Outcome(path, size, mtime_ns, None, False, "decode", reason,
                                         f"its Dask task failed ({type(e).__name__}); the image was tried alone",
                                         etag=etag)])
            fut.release()
            return out

        for c in batched(items, chunk):
            submit(c, False)
            while len(batches) >= limit:
                got = collect(next(pending))
                if got is not None:
                    yield got
        while batches:
            got = collect(next(pending))
            if got is not None:
                yield got
    except (OSError, TimeoutError) as e:
        raise NeardupError(f"lost the Dask scheduler ({type(e).__name__}: {e}); finished work is cached, "
                           "run the same scan again to resume") from None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
