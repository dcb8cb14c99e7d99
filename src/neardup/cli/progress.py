"""Rich progress bars and the end-of-run summary table (the library never draws)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

#: what each stage counts, for its rate
UNITS = {"list": "files", "extract": "img", "search": "rows", "verify": "pairs", "embedding": "pairs",
         "local": "pairs", "contains": "pairs"}
#: the label each stage's bar shows
LABELS = {"list": "listing", "extract": "extracting", "search": "searching", "verify": "verifying",
          "embedding": "embedding", "local": "local checks", "contains": "contains checks"}


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items a second in the stage's own unit (rich's speed is bytes-minded)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            unit = task.fields.get("unit", "")
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")

    return RateColumn()


class ProgressUI:
    """Progress bars on stderr: a count while listing, then for each stage a total (once
    known), a rate and the time left; rich is imported only when they are drawn."""

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
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description:<12}"), BarColumn(),
                                      MofNCompleteColumn(), _rate_column(), TimeElapsedColumn(),
                                      TextColumn("eta"), TimeRemainingColumn(), console=self.console,
                                      transient=False, speed_estimate_period=10.0)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def update(self, stage: str, advance: int, total: int | None) -> None:
        """The library's ``progress(stage, advance, total)``; a total of None keeps the last known."""
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(LABELS.get(stage, stage), total=total,
                                                         unit=UNITS.get(stage, ""))
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
            + (f" | exact copies {s['exact_copies']:,}" if s.get("exact_copies") else "")
            + (f" | embedding pairs {s['embedding_pairs']:,} | contains pairs {s.get('contains_pairs', 0):,}"
               f" | local checks {s['local_checks']:,}"
               if "embedding_pairs" in s else "")
        )
        if result.failures:
            self.console.print(f"[yellow]{len(result.failures)} file(s) failed; see \"failures\" in {output}[/]")
