"""The ``neardup`` command: a thin layer over :func:`neardup.scan` that owns logs and progress."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ..config import DEFAULT_KINDS, ScanOptions
from ..errors import NeardupError, UsageError

if TYPE_CHECKING:
    from ..actions import Plan
    from ..config import Progress
    from ..index import Index
    from ..results import Failure

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURES = 3  # finished, but some files could not be read or decoded
DEFAULTS = ScanOptions()  # every flag's default comes from the one place they are set
EXIT_ERROR = 2  # bad usage or a fatal error; click uses 2 for usage errors as well


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neardup")
def main() -> None:
    """Find exact and near-duplicate images and say which copy to keep."""


class _SourceArg(click.ParamType):  # type: ignore[type-arg]
    """A local folder or file that must exist, or a cloud URL (checked when listed)."""

    name = "PATH|URL"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from ..sources import is_remote

        if is_remote(value):
            return value
        if "://" in value:
            self.fail(f"{value!r}: unsupported URL scheme; use az://, abfs://, abfss:// or s3://, or a local path",
                      param, ctx)
        return str(click.Path(exists=True, file_okay=True, dir_okay=True).convert(value, param, ctx))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=_SourceArg())
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="results.json",
              show_default=True, help="Where to write results.json.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the verified pairs as CSV.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Feature cache folder [default: $NEARDUP_CACHE or ~/.cache/neardup].")
@click.option("--no-cache", is_flag=True, help="Keep features in memory only.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Decoding processes; 0 means one per core.")
@click.option("--radius", type=click.IntRange(0, 16), default=DEFAULTS.radius, show_default=True,
              help="Hamming radius of the exact 64-bit candidate search.")
@click.option("--threshold", type=click.IntRange(0, 96), default=DEFAULTS.hash_threshold, show_default=True,
              help="Largest 256-bit hash distance accepted as a duplicate (lower = stricter).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULTS.max_pixels, show_default=True,
              help="Images declaring more pixels are refused as decompression bombs.")
@click.option("--mode", type=click.Choice(["fast", "thorough"]), default="fast", show_default=True,
              help="thorough adds CNN embeddings and local features (heavy crops, insets, tilts); "
                   "needs pip install 'neardup[cnn]', and 'neardup[export]' once to export the default model.")
@click.option("--model", "model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="thorough: an ONNX image model instead of EfficientNet-Lite0.")
@click.option("--model-size", type=click.IntRange(32, 1024), default=DEFAULTS.model_size, show_default=True,
              help="Input side of --model in pixels.")
@click.option("--model-mean", type=(float, float, float), default=DEFAULTS.model_mean, show_default=True,
              help="Per-channel mean of --model's input normalisation (0..1 scale).")
@click.option("--model-std", type=(float, float, float), default=DEFAULTS.model_std, show_default=True,
              help="Per-channel std of --model's input normalisation.")
@click.option("--embedding-threshold", "knn_threshold", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=DEFAULTS.knn_threshold, show_default=True, help="thorough: cosine at which an embedding pair is verified.")
@click.option("--similar", is_flag=True,
              help="thorough: also group other shots of the same scene or object (not only copies).")
@click.option("--retries", type=click.IntRange(min=0), default=DEFAULTS.retries, show_default=True,
              help="Cloud sources: retries of a transient fault (timeout, reset, 5xx) per read or listing page.")
@click.option("--time-budget", type=click.FloatRange(min=0), default=DEFAULTS.time_budget, show_default=True,
              help="Seconds one image may take in a worker process before it is stopped and recorded as a failure "
                   "(0: no limit).")
@click.option("--worker-memory", type=click.IntRange(min=0), default=0, show_default=True,
              help="MB of address space per worker process (0: no limit); an image that needs more is a failure.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="Where extraction runs: local processes, or a Dask cluster (pip install 'neardup[dask]').")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="dask: the scheduler, e.g. tcp://HOST:8786; without it a local cluster of --workers processes.")
@click.option("--reference", multiple=True, type=_SourceArg(), metavar="PATH|URL",
              help="A master folder or URL, scanned with PATHS: its files are always the keeper and never acted "
                   "on; groups made only of its files are not reported. Repeatable.")
@click.option("--include-reference-groups", is_flag=True,
              help="Also report groups whose members are all under --reference roots.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def scan(paths: tuple[str, ...], output: str, csv_path: str | None, cache_dir: str | None, no_cache: bool,
         workers: int, radius: int, threshold: int, max_pixels: int, mode: str, model: str | None,
         model_size: int, model_mean: tuple[float, float, float], model_std: tuple[float, float, float],
         knn_threshold: float, similar: bool, retries: int, time_budget: float, worker_memory: int, executor: str,
         scheduler: str | None, reference: tuple[str, ...], include_reference_groups: bool, quiet: bool) -> None:
    """Scan PATHS (folders, files, or az://CONTAINER/PREFIX, abfs://..., s3://BUCKET/PREFIX URLs)
    and write the duplicate groups to results.json.

    \b
    Cloud credentials come from the environment, never from the command line:
      Azure: AZURE_STORAGE_CONNECTION_STRING; or AZURE_STORAGE_ACCOUNT_NAME with
             AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN; or the account name
             alone for DefaultAzureCredential (managed identity, az login, ...).
      S3:    the AWS environment, profiles (AWS_PROFILE) and roles; AWS_ENDPOINT_URL
             for S3-compatible services.

    Exit status: 0 done, 3 done but some files failed (listed under "failures"), 2 error.
    """
    from ..pipeline import scan as run_scan
    from .progress import ProgressUI

    # an hour of scanning must not be lost to a typo in -o: check every output before the first image
    _check_writable(output, "-o")
    if csv_path:
        _check_writable(csv_path, "--csv")
    kwargs: dict[str, object] = {}
    if no_cache:
        kwargs["cache"] = None
    elif cache_dir is not None:
        kwargs["cache"] = cache_dir
    ui = ProgressUI(enabled=not quiet)
    try:
        with ui:
            result = run_scan(list(paths), progress=None if quiet else ui.update, workers=workers, radius=radius,
                              hash_threshold=threshold, max_pixels=max_pixels, mode=mode, model=model,
                              model_size=model_size, model_mean=tuple(model_mean), model_std=tuple(model_std),
                              knn_threshold=knn_threshold, similar=similar, retries=retries, executor=executor,
                              scheduler=scheduler, time_budget=time_budget, worker_memory=worker_memory,
                              reference=tuple(reference), include_reference_groups=include_reference_groups,
                              **kwargs)  # type: ignore[arg-type]
    except NeardupError as e:
        raise _fatal(e) from None
    _write(output, result.to_json())
    if csv_path:
        _write(csv_path, result.pairs_csv())
    if not quiet:
        ui.summary(result, output)
    if not result.stats["unique_contents"]:  # nothing read now nor taken from the cache
        click.echo(_no_image(paths, result), err=True)
    sys.exit(EXIT_FAILURES if result.failures else EXIT_OK)


def _no_image(paths: tuple[str, ...], result: object) -> str:
    """What to tell a user whose scan found no image to compare."""
    s = result.stats  # type: ignore[attr-defined]
    where = ", ".join(paths)
    bits = []
    if s.get("skipped_not_images"):
        bits.append(f"{s['skipped_not_images']:,} file(s) skipped as not images by their extension")
    failed = [f for f in result.failures if f.stage != "scan"]  # type: ignore[attr-defined]
    if failed:
        bits.append(f"{len(failed):,} file(s) could not be read as images (see \"failures\")")
    if not s.get("images") and not bits:
        return f"no image found under {where}: it holds no files; check the path"
    return f"no image found under {where}" + (f": {'; '.join(bits)}" if bits else "")


@main.group()
def model() -> None:
    """The embedding model of thorough mode."""


@model.command("export")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Cache folder to export into [default: $NEARDUP_CACHE or ~/.cache/neardup].")
def model_export(cache_dir: str | None) -> None:
    """Convert EfficientNet-Lite0 to ONNX once (needs pip install 'neardup[export]')."""
    from ..embed.model import default_model_spec

    try:
        spec = default_model_spec(cache_dir)
    except NeardupError as e:
        raise _fatal(e) from None
    click.echo(f"{spec.path}\n{spec.model_id}")


@main.command("eval")
@click.argument("truth", type=click.Path(exists=True, dir_okay=False))
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the scores as one JSON object.")
def eval_cmd(truth: str, results: str, as_json: bool) -> None:
    """Score RESULTS (results.json or a pairs CSV) against a TRUTH.csv benchmark file."""
    from ..evaluate import format_scores, load_truth, score_file

    try:
        s = score_file(load_truth(truth), results)
    except (ValueError, KeyError) as e:
        raise _fatal(NeardupError(f"cannot score {results}: {e}")) from None
    click.echo(json.dumps(s) if as_json else format_scores(s))


@main.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="report.html", show_default=True,
              help="The page; thumbnails go to a folder beside it (<name>_files).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Thumbnail processes; 0 means one per core.")
def report(results: str, output: str, workers: int) -> None:
    """Write a review page for RESULTS: groups with evidence, filters, charts, decisions export.

    The page is static and works offline, with no server: open it in a browser.
    """
    from ..report import write_report

    _check_writable(output, "-o")
    try:
        n = write_report(results, output, workers=workers)
    except NeardupError as e:
        raise _fatal(e) from None
    click.echo(f"wrote {output}: {n['groups']:,} groups, {n['images']:,} pictures "
               f"({n['thumbnail_failures']:,} without a preview)")


@main.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--decisions", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Decisions exported from the review page (keep/remove flips, 'not a duplicate' pairs).")
@click.option("--action", type=click.Choice(["quarantine", "delete", "hardlink", "symlink", "stack"]), required=True,
              help="quarantine: move duplicates under --to; hardlink/symlink: move them under --to and link "
                   "their paths to the keeper; delete: remove them (cannot be undone); stack: move nothing, write "
                   "the groups as stacks to the JSON file --to.")
@click.option("--kinds", default=",".join(DEFAULT_KINDS), show_default=True, metavar="KIND[,KIND]",
              help="Which members to act on, by their kind of sameness to the keeper: copy, contains (one shows the "
                   "other inside a larger frame), similar (another shot); other shots are never removed by default.")
@click.option("--to", "to", type=click.Path(), default=None,
              help="Folder that receives the originals (required except for delete); for stack, the JSON file "
                   "(or a folder for it).")
@click.option("--manifest", type=click.Path(dir_okay=False), default=None,
              help="Where to write the undo manifest [default: inside --to].")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Feature cache where 'not a duplicate' decisions are remembered for later scans.")
@click.option("--yes", is_flag=True, help="Really do it; without --yes only print what would be done.")
def apply(results: str, decisions: str | None, action: str, kinds: str, to: str | None, manifest: str | None,
          cache_dir: str | None, yes: bool) -> None:
    """Act on the duplicates in RESULTS, never on the last copy of anything, never on a file
    under a --reference root.

    Every file (and its keeper) must still have the content it had at scan time, or it is
    skipped. A manifest is written as it goes: `neardup undo MANIFEST` puts everything back.
    """
    from .. import actions
    from ..results import load_results

    try:
        data = load_results(results)
    except NeardupError as e:
        raise _fatal(e) from None
    try:
        chosen = actions.parse_kinds(kinds)
    except NeardupError as e:
        raise _fatal(e) from None
    if action == "stack" and to is None:
        raise click.UsageError("--action stack needs --to FILE.json (where the stacks are written)")
    try:
        dec = actions.load_decisions(decisions) if decisions else None
        pl = actions.plan(data, dec, kinds=chosen)
        if pl.not_duplicates:
            _remember_apart(pl, cache_dir)
        if action == "stack":
            assert to is not None
            rep = actions.write_stacks(pl.stacks, to=to, manifest=manifest, dry_run=not yes)
        else:
            rep = actions.apply(pl.steps, action=action, to=to, manifest=manifest, dry_run=not yes)
    except NeardupError as e:
        raise _fatal(e) from None
    except OSError as e:
        raise _fatal(NeardupError(f"stopped: {e}; what was done is in the manifest (the file named by --manifest, or "
                                  "the newest neardup-manifest-*.jsonl in --to); `neardup undo` on it reverses it")) from None
    _say_left(pl, chosen)
    if action == "stack":
        click.echo(f"{'would write' if not yes else 'wrote'} {len(pl.stacks)} stack(s) of {len(rep.done)} file(s) "
                   f"to {rep.written}")
        if rep.manifest:
            click.echo(f"manifest: {rep.manifest}  (undo: neardup undo {rep.manifest})")
        return
    click.echo(actions.describe(rep, action=action, dry_run=not yes))
    tail = "" if yes else " (dry run: add --yes to do it)"
    click.echo(f"{len(rep.done)} file(s) {'acted on' if yes else 'to act on'}, {len(rep.skipped)} skipped{tail}")
    if rep.manifest:
        click.echo(f"manifest: {rep.manifest}  (undo: neardup undo {rep.manifest})")
    if pl.steps and not rep.done and all(actions.is_gone(why) for _, why in rep.skipped):
        where = (f"the folder the scan ran in, {data.cwd}" if data.cwd is not None else
                 "the folder the scan ran in (these results, written by an older neardup, do not say which: "
                 "run apply from there)")
        raise _fatal(NeardupError(f"nothing to act on: none of the {len(pl.steps)} file(s) or their keepers were "
                                  f"found; relative paths in {results} are relative to {where}; were the files moved "
                                  "since the scan?"))


def _remember_apart(pl: Plan, cache_dir: str | None) -> None:
    """Store a plan's "not a duplicate" pairs in the feature cache, so later scans keep them apart."""
    from .. import actions
    from ..features.extract import DIGEST
    from ..store import FeatureCache, default_cache_dir

    pairs = [(bytes.fromhex(da), bytes.fromhex(db)) for _, _, da, db in pl.not_duplicates]
    if pl.algo != DIGEST:  # results of an older version: remember the contents by today's digest
        pairs = []
        for a, b, _, _ in pl.not_duplicates:
            try:
                pairs.append((bytes.fromhex(actions.file_digest(a)), bytes.fromhex(actions.file_digest(b))))
            except (OSError, NeardupError):
                click.echo(f"cannot read {a} or {b} to remember them apart; scan again and decide anew", err=True)
    with FeatureCache(cache_dir or default_cache_dir()) as fc:
        new = fc.put_not_duplicates(pairs)
    click.echo(f"remembered {len(pl.not_duplicates)} 'not a duplicate' pair(s) ({new} new): later scans keep them apart")


def _say_left(pl: Plan, chosen: tuple[str, ...]) -> None:
    """What the plan leaves alone on purpose: refused decisions, other kinds, reference files."""
    for path, why in pl.refused:
        click.echo(f"refused {path}: {why}")
    if pl.other_kinds:
        left = sorted({k for _, k in pl.other_kinds})
        click.echo(f"left alone: {len(pl.other_kinds)} member(s) of kind {', '.join(left)} (--kinds {','.join(chosen)}; "
                   f"add --kinds {','.join((*chosen, *left))} to act on them)")
    if pl.reference:
        click.echo(f"{pl.reference} reference file(s) kept: files under --reference roots are never acted on")


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
def undo(manifest: str) -> None:
    """Put back every file a `neardup apply` moved or linked, byte for byte."""
    from .. import actions

    try:
        rep = actions.undo(manifest)
    except NeardupError as e:
        raise _fatal(e) from None
    for p in rep.done:
        click.echo(f"restored {p}")
    for p, why in rep.skipped:
        click.echo(f"not restored {p}: {why}")
    click.echo(f"{len(rep.done)} restored, {len(rep.skipped)} not restored")
    sys.exit(EXIT_FAILURES if rep.skipped else EXIT_OK)



@main.group("index")
def index_group() -> None:
    """A saved collection that `neardup query` answers from, without reading it again."""


def _index_options(f: Callable[..., None]) -> Callable[..., None]:
    f = click.option("--index", "index_dir", type=click.Path(file_okay=False), required=True,
                     help="The index folder (its feature cache lives inside it).")(f)
    f = click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Decoding processes; 0 means one per core.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")(f)
    return f


@index_group.command("build")
@click.argument("paths", nargs=-1, required=True, type=_SourceArg())
@_index_options
@click.option("--radius", type=click.IntRange(0, 16), default=DEFAULTS.radius, show_default=True,
              help="Hamming radius of the exact 64-bit candidate search (fixed for the index's queries).")
@click.option("--threshold", type=click.IntRange(0, 96), default=DEFAULTS.hash_threshold, show_default=True,
              help="Largest 256-bit hash distance accepted as a copy (fixed for the index's queries).")
@click.option("--mode", type=click.Choice(["fast", "thorough"]), default="fast", show_default=True,
              help="thorough also keeps the CNN embeddings and local features (heavy crops, tilts, perspective); "
                   "needs pip install 'neardup[cnn]'.")
def index_build(paths: tuple[str, ...], index_dir: str, workers: int, quiet: bool, radius: int, threshold: int,
                mode: str) -> None:
    """Extract the collection under PATHS into a new index at --index DIR."""
    from ..index import Index
    from .progress import ProgressUI

    ui = ProgressUI(enabled=not quiet)
    try:
        with ui:
            idx = Index.build(list(paths), index_dir, progress=None if quiet else ui.update, workers=workers,
                              radius=radius, hash_threshold=threshold, mode=mode)
    except NeardupError as e:
        raise _fatal(e) from None
    click.echo(f"indexed {idx.files:,} files ({idx.rows:,} contents) in {index_dir}")
    _say_failures(idx.added.failures if idx.added else [])


@index_group.command("add")
@click.argument("paths", nargs=-1, required=True, type=_SourceArg())
@_index_options
def index_add(paths: tuple[str, ...], index_dir: str, workers: int, quiet: bool) -> None:
    """Add the images under PATHS to the index at --index DIR (files it holds are skipped)."""
    idx, got = _on_index(index_dir, quiet, lambda idx, bar: idx.add(list(paths), progress=bar, workers=workers))
    click.echo(f"added {got.files:,} files ({got.contents:,} new contents); the index holds {idx.files:,} files")
    _say_failures(got.failures)


def _on_index(index_dir: str, quiet: bool, work: Callable[[Index, Progress | None], T]) -> tuple[Index, T]:
    """Open the index at ``index_dir`` and run ``work`` on it with the progress bars; a library
    error is the CLI's error."""
    from ..index import Index
    from .progress import ProgressUI

    ui = ProgressUI(enabled=not quiet)
    try:
        idx = Index.open(index_dir)
        with ui:
            return idx, work(idx, None if quiet else ui.update)
    except NeardupError as e:
        raise _fatal(e) from None


def _say_failures(failures: list[Failure]) -> None:
    """Files an index could not take: listed (the first 20) on stderr, exit status 3."""
    if not failures:
        return
    for f in failures[:20]:
        click.echo(f"failed {f.path}: {f.reason} ({f.error})", err=True)
    if len(failures) > 20:
        click.echo(f"... and {len(failures) - 20:,} more", err=True)
    sys.exit(EXIT_FAILURES)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=_SourceArg())
@_index_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="matches.json",
              show_default=True, help="Where to write matches.json.")
def query(paths: tuple[str, ...], index_dir: str, workers: int, quiet: bool, output: str) -> None:
    """For each image under PATHS, its copies in the collection of --index DIR (matches.json).

    Exit status: 0 done, 3 done but some query files failed (listed under "failures"), 2 error.
    """
    _check_writable(output, "-o")
    _, result = _on_index(index_dir, quiet, lambda idx, bar: idx.query(list(paths), progress=bar, workers=workers))
    _write(output, result.to_json())
    if not quiet:
        click.echo(f"{result.stats['with_matches']:,} of {result.stats['queries']:,} query files have copies in the "
                   f"index ({result.stats['matches']:,} matches); wrote {output}")
    sys.exit(EXIT_FAILURES if result.failures else EXIT_OK)


class _FatalError(click.ClickException):
    """A library error as the CLI reports it: its message, exit status 2."""

    exit_code = EXIT_ERROR


def _fatal(e: NeardupError) -> click.ClickException:
    """Exit status 2 for every error, as documented; bad usage also prints the usage line."""
    if isinstance(e, UsageError):
        return click.UsageError(str(e))
    return _FatalError(str(e))


def _check_writable(path: str, flag: str) -> None:
    """Fail now, before any work, if ``path`` cannot be written (a missing folder, a read-only
    place, a folder of that name): by creating and removing a file beside it."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    why = None
    if p.is_dir():
        why = "it is a folder"
    elif not parent.is_dir():
        why = f"the folder {parent} does not exist"
    else:
        probe = parent / f".{p.name}.neardup-probe-{os.getpid()}"
        try:
            probe.open("x").close()
            probe.unlink()
            if p.exists() and not os.access(p, os.W_OK):
                why = "the file is not writable"
        except OSError as e:
            why = e.strerror or str(e)
    if why:
        raise click.UsageError(f"cannot write {flag} {path}: {why}; choose another {flag} path")


def _write(path: str, text: str) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    except OSError as e:
        raise _fatal(NeardupError(f"cannot write {path}: {e.strerror}; choose another -o path")) from None


if __name__ == "__main__":  # pragma: no cover
    main()
