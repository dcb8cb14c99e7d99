"""Extraction on a Dask cluster: the same chunks as the local process pool, as Dask tasks.

The driver lists the source and looks up its cache as usual; each chunk of uncached files
becomes one task (batches of ~100 images: a task costs Dask a few milliseconds), which a
worker runs by reading the files itself (a shared file system or cloud URLs) and returning
features only, never pixels.  The driver writes them to its cache as they arrive, exactly as
with local workers, so the result is identical.  At most ``2 * workers`` tasks are in flight,
so the driver's memory stays bounded; a worker that dies loses its tasks, which the scheduler
runs again elsewhere; a batch that keeps failing is split (``_Flight``).
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


class _Flight:
    """The tasks in flight and what to do when one fails.

    A batch that keeps failing runs one task per image; an image whose single task dies is kept
    as a suspect and run again with nothing else in flight (``alone``), since the scheduler blames
    every task a dying worker held, not only the one it was running.
    """

    def __init__(self, client: Any, run: Any) -> None:
        from distributed import as_completed

        self.client, self.run = client, run
        self.pending = as_completed(loop=client.loop)
        self.tasks: dict[Any, tuple[list[Item], str]] = {}
        self.suspects: list[Item] = []

    def submit(self, items: list[Item], stage: str) -> None:
        # pure=False: a rerun of the same batch must run, not be served from a dead worker's memory
        fut = self.client.submit(self.run, items, pure=False, retries=2 if stage == "batch" else 0)
        self.tasks[fut.key] = (items, stage)
        self.pending.add(fut)

    def collect(self) -> Chunk | None:
        """The next finished task's chunk; None where its images were sent round again."""
        fut = next(self.pending)
        items, stage = self.tasks.pop(fut.key)
        try:
            out: Chunk = fut.result()
        except Exception as e:  # noqa: BLE001 - a task's error (KilledWorker, a worker's bug): rerun its images alone
            fut.release()
            killed = type(e).__name__ == "KilledWorker"
            if stage == "batch":
                for it in items:  # one bad image costs one failure row, not the batch
                    self.submit([it], "single")
                return None
            if killed and stage == "single":
                self.suspects.append(items[0])
                return None
            from ..pipeline.extract import Chunk, Outcome

            it = items[0]
            reason = "worker-killed" if killed else "worker-crashed"
            return Chunk.of([Outcome(it.path, it.size, it.mtime_ns, None, False, "decode", reason,
                                     f"its Dask task failed ({type(e).__name__}); the image was tried alone",
                                     etag=it.etag)])
        fut.release()
        return out


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
    from functools import partial

    from ..pipeline.extract import batched

    client, cluster = _client(scheduler, workers)  # first: a missing dask is a usage error
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        limit = 2 * n_workers
        flight = _Flight(client, partial(_run_batch, max_pixels=max_pixels, spec=model, retries=retries,
                                         time_budget=time_budget))
        for c in batched(items, chunk):
            flight.submit(c, "batch")
            while len(flight.tasks) >= limit:
                if (got := flight.collect()) is not None:
                    yield got
        while flight.tasks:
            if (got := flight.collect()) is not None:
                yield got
        while flight.suspects:
            flight.submit([flight.suspects.pop()], "alone")
            if (got := flight.collect()) is not None:
                yield got
    except (OSError, TimeoutError) as e:
        raise NeardupError(f"lost the Dask scheduler ({type(e).__name__}: {e}); finished work is cached, "
                           "run the same scan again to resume") from None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
