"""Rich progress bars and the end-of-run summary table (the library never draws)."""

from __future__ import annotations

from functools import cached_property
from typing import Any


class ProgressUI:
    """Progress bars on stderr; rich is imported only when they are drawn."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    @cached_property
    def console(self) -> Any:
        from rich.console import Console

        return Console(stderr=True)

    def __enter__(self) -> ProgressUI:
        if self.enabled:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description:<11}"), BarColumn(),
                                      TextColumn("{task.completed:,} done"), TimeElapsedColumn(),
                                      console=self.console, transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def update(self, stage: str, advance: int, total: int | None) -> None:
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], advance=advance, total=total)

    def summary(self, result: Any, output: str) -> None:
        s = result.stats
        from rich.table import Table

        t = Table(title=f"neardup: {s['groups']:,} groups, {s['duplicates']:,} duplicates -> {output}")
        for col in ("stage", "seconds", "peak RSS MB"):
            t.add_column(col, justify="right" if col != "stage" else "left")
        for name, st in s["stages"].items():
            t.add_row(name, f"{st['seconds']:.2f}", f"{st.get('peak_rss_mb', 0):.0f}")
        self.console.print(t)
        self.console.print(
            f"images {s['images']:,} | decoded {s['decoded']:,} | from cache {s['from_cache']:,} | "
            f"failed {s['failed']:,} | candidate pairs {s['candidate_pairs']:,} | verified {s['verified_pairs']:,}"
            + (f" | embedding pairs {s['embedding_pairs']:,} | local checks {s['local_checks']:,}"
               if "embedding_pairs" in s else "")
        )
        if result.failures:
            self.console.print(f"[yellow]{len(result.failures)} file(s) failed; see \"failures\" in {output}[/]")
