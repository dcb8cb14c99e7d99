"""Safe actions on a scan's groups: plan, apply with a manifest written as it goes, undo.

The rules that make it safe:

- A group's keeper is never acted on, and a plan never acts on every member of a group: a
  decision that would remove the last copy is refused and reported.
- Before touching a file, its digest must still be the one recorded at scan time, and so must
  its keeper's; a file that changed, vanished, or is the keeper itself under another name
  (a symlink or hard link) is skipped and reported.
- Every step is written to the manifest (and flushed to disk) *before* it happens and again
  when done, so a crash at any point leaves a manifest that :func:`undo` can complete.
- ``quarantine`` moves files under ``--to``; ``hardlink`` and ``symlink`` first move the
  duplicate there too, then link its path to the keeper; so :func:`undo` restores every file
  byte for byte.  ``delete`` cannot be undone, and says so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DEFAULT_KINDS
from .errors import NeardupError, UsageError
from .features.extract import DIGEST, LEGACY_DIGEST, digest_bytes, new_digest
from .results import KINDS, ScanResult
from .sources import ReadError, is_remote
from .sources.cloud import blob_exists, delete_blob, parse_url, read_blob, write_blob

__all__ = ["ACTIONS", "Step", "Plan", "Report", "Stack", "plan", "apply", "undo", "load_decisions", "file_digest",
           "is_gone", "parse_kinds", "write_stacks", "DEFAULT_KINDS"]

ACTIONS = ("quarantine", "delete", "hardlink", "symlink", "stack")
STACKS_FORMAT = "neardup-stacks/1"
#: /2: every path is absolute (resolved when apply ran); /1 (before) recorded paths as the
#: results gave them, relative to the folder apply ran in
MANIFEST_FORMAT = "neardup-manifest/2"
OLD_MANIFEST_FORMATS = ("neardup-manifest/1",)
PART = ".neardup-part"  # a copy across file systems in progress
DECISIONS_FORMAT = "neardup-decisions/1"


def file_digest(path: str, algo: str = DIGEST) -> str:
    """The content digest neardup records at scan time (hex; ``algo`` as the results or manifest
    name it); streamed for files, downloaded for blobs."""
    return _content(path, algo)[0]


def _content(path: str, algo: str = DIGEST) -> tuple[str, bytes | None]:
    """(digest, the blob's bytes) for a blob, so a move need not download it again;
    (digest, None) for a file, hashed as a stream.  Same digest as the scan's ``digest_bytes``."""
    if is_remote(path):

        data = read_blob(path)
        return digest_bytes(data, algo).hex(), data
    h = new_digest(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest(), None


# -- the few operations an action needs, on files or blobs ----------------------------------
def _exists(p: str | Path) -> bool:
    if is_remote(str(p)):

        return blob_exists(str(p))
    return os.path.lexists(p)


def _unlink(p: str | Path) -> None:
    if is_remote(str(p)):

        delete_blob(str(p))
    else:
        os.unlink(p)


@dataclass(frozen=True, slots=True)
class Step:
    """Act on ``path`` (content ``digest``) because ``keeper`` (``keeper_digest``) stays."""

    path: str
    digest: str
    keeper: str
    keeper_digest: str
    algo: str = DIGEST  # the digest the results were written with


@dataclass(frozen=True, slots=True)
class Stack:
    """A group as a photo manager imports it: the keeper on top, the members below, unmoved."""

    keep: str
    members: list[str]  # the keeper first; absolute paths or URLs
    kind: str  # the loosest kind of sameness among them

    def to_dict(self) -> dict[str, Any]:
        return {"keep": self.keep, "members": self.members, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Plan:
    steps: list[Step]
    refused: list[tuple[str, str]]  # (path, why) decisions not followed, so no copy is lost
    not_duplicates: list[tuple[str, str, str, str]]  # (a, b, digest a, digest b) marked by a person
    algo: str = DIGEST  # the digest the results were written with
    #: (path, kind) members left alone because their kind of sameness is not among ``kinds``
    other_kinds: list[tuple[str, str]] = field(default_factory=list)
    #: reference members (never acted on) in the groups planned
    reference: int = 0
    stacks: list[Stack] = field(default_factory=list)  # each group with the members of ``kinds``


def parse_kinds(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"copy,similar"`` (or a list) as a tuple of :data:`~neardup.results.KINDS`; a usage error
    naming the valid ones otherwise."""
    parts = [k.strip() for k in (text.split(",") if isinstance(text, str) else text) if k.strip()]
    bad = [k for k in parts if k not in KINDS]
    if bad or not parts:
        raise UsageError(f"--kinds takes a comma-separated list of {', '.join(KINDS)}; got {text!r}")
    return tuple(dict.fromkeys(parts))

@dataclass(slots=True)
class Report:
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    manifest: str | None = None
    written: str | None = None  # the file an action wrote (stack)


def load_decisions(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A decisions file (the review page exports one): ``keep`` and ``remove`` path lists and
    ``not_duplicates`` path pairs, all optional."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the decisions file {path}: {e}; export it again from the review page") from None
    if not isinstance(d, dict) or d.get("format", DECISIONS_FORMAT) != DECISIONS_FORMAT:
        raise UsageError(f"{path} is not a neardup decisions file (format {DECISIONS_FORMAT})")
    for k in ("keep", "remove"):
        if not isinstance(d.get(k, []), list) or not all(isinstance(p, str) for p in d.get(k, [])):
            raise UsageError(f"{path}: {k!r} must be a list of paths")
    pairs = d.get("not_duplicates", [])
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
                                              for p in pairs):
        raise UsageError(f"{path}: 'not_duplicates' must be a list of [path, path] pairs")
    return d


def plan(results: ScanResult | dict[str, Any], decisions: dict[str, Any] | None = None, *,
         kinds: Iterable[str] = DEFAULT_KINDS) -> Plan:
    """What to act on: in each group every member but the keeper whose kind of sameness to the
    keeper is one of ``kinds``, unless a decision says otherwise; never every member of a group,
    never a member under a ``--reference`` root (whatever a decision says).

    A person's explicit ``remove`` decision is followed whatever the member's kind (they looked
    at it); the default leaves other shots and containers alone.  Decisions name members as the
    results do; the steps name absolute paths, resolved against the folder the scan ran in
    (recorded in the results), so ``apply`` acts on the same files from any working folder.
    """
    if not isinstance(results, ScanResult):
        results = ScanResult.from_dict(results)
    kinds = parse_kinds(kinds)
    decisions = decisions or {}
    keep_set = set(decisions.get("keep", []))
    remove_set = set(decisions.get("remove", []))
    doubted: dict[str, set[str]] = {}
    for a, b in decisions.get("not_duplicates", []):
        doubted.setdefault(a, set()).add(b)
        doubted.setdefault(b, set()).add(a)
    steps: list[Step] = []
    refused: list[tuple[str, str]] = []
    apart: list[tuple[str, str, str, str]] = []
    other_kinds: list[tuple[str, str]] = []
    stacks: list[Stack] = []
    n_reference = 0
    algo = results.stats.get("settings", {}).get("digest", LEGACY_DIGEST)
    for g in results.groups:
        members = list(g.members)
        digests = g.digests
        if len(members) < 2:
            continue
        if any(m not in digests for m in members):
            raise UsageError("results.json has no content digests (written by an older neardup); scan again")
        member_set = set(members)
        for a in members:
            for b in doubted.get(a, ()):
                if b in member_set and a < b:
                    apart.append((results.resolve(a), results.resolve(b), digests[a], digests[b]))
        keeper = g.keep
        kind_of = g.member_kinds()
        reference = set(g.reference) | {m for m in members if results.is_reference(m)}
        n_reference += len(reference)
        act = {m for m in members if m != keeper and kind_of[m] in kinds}
        other_kinds += [(results.resolve(m), kind_of[m]) for m in members
                        if m != keeper and kind_of[m] not in kinds and m not in remove_set and m not in reference]
        act -= keep_set
        act |= {m for m in members if m in remove_set and m not in keep_set}
        # a member a person doubted is never acted on
        act -= {m for m in members if doubted.get(m, set()) & member_set}
        # nor one under a reference root, whatever a decision says
        refused += [(results.resolve(m), "under a --reference root: never acted on") for m in sorted(act & reference)
                    if m in remove_set]
        act -= reference
        stacked = [m for m in members if (m == g.keep or kind_of[m] in kinds)
                   and not doubted.get(m, set()) & member_set]
        if len(stacked) > 1:
            stacks.append(Stack(results.resolve(g.keep), [results.resolve(m) for m in stacked],
                                max((kind_of[m] for m in stacked), key=KINDS.index)))
        if keeper in act:
            # a member that shows another whole inside a larger frame is not its original
            held = {str(p.evidence.get("container")) for p in g.pairs if p.stage == "contains"}
            # a reference file, then a copy (not another shot) stands in best
            stays = sorted((m for m in members if m not in act),
                           key=lambda m: (m not in reference, m in held, KINDS.index(kind_of[m])))
            if stays:
                keeper = stays[0]
            else:
                act.discard(keeper)
                refused.append((results.resolve(keeper), "every member of its group was marked for removal; "
                                                         "the keeper stays"))
        if not (set(members) - act):  # pragma: no cover - guarded above
            raise AssertionError("a plan would remove every copy")
        for m in members:
            if m in act:
                steps.append(Step(results.resolve(m), digests[m], results.resolve(keeper), digests[keeper], algo))
    return Plan(steps, refused, apart, algo, other_kinds, n_reference, stacks)


class _Manifest:
    """Append-only JSON lines, each flushed and fsynced before the step it announces."""

    def __init__(self, path: Path, header: dict[str, Any] | None) -> None:
        self.path = path
        try:
            # a new apply never shares a manifest (exclusive create); undo appends to its own
            self.f = open(path, "x" if header is not None else "a", encoding="utf-8")  # noqa: SIM115
        except FileExistsError:
            raise UsageError(f"the manifest {path} already exists; pass another --manifest") from None
        if header is not None:
            self.write(header)

    def write(self, rec: dict[str, Any]) -> None:
        self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def _dest(to: Path | str, path: str) -> str:
    """Where ``path`` goes under ``to``: its absolute path (or container and key) re-rooted, so
    names never collide."""
    if is_remote(path):

        u = parse_url(path)
        return f"{str(to).rstrip('/')}/{u.container}/{u.key}"
    p = Path(os.path.abspath(path))
    return str(Path(to) / p.relative_to(p.anchor))


def _move(src: str | Path, dst: str | Path, data: bytes | None = None) -> None:
    """Move a file, or a blob (``data``: its bytes when the caller has them already)."""
    if is_remote(str(src)):
        # a blob: write the copy, then delete the original; a crash between leaves both,
        # which undo resolves (the original is intact, the copy goes)

        if data is None:
            data = read_blob(str(src))
        try:
            write_blob(str(dst), data)
        except ReadError:
            # a retried write whose first attempt succeeded unseen finds the blob there: fine
            # if it holds these bytes, an error otherwise
            if not (_exists(dst) and read_blob(str(dst)) == data):
                raise
        _unlink(src)
        return
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)  # atomic on one file system: bytes, mode and times unchanged
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    # across file systems: copy beside the target, flush, rename into place, then remove the
    # source; a crash leaves either the source intact or both whole, never a torn file in place
    part = Path(str(dst) + PART)
    shutil.copy2(src, part)
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    os.replace(part, dst)
    os.unlink(src)


def _with_suffix(dest: str, k: int) -> str:
    stem, dot, ext = dest.rpartition(".")
    return f"{stem}.{k}.{ext}" if dot and "/" not in ext else f"{dest}.{k}"


GONE = "gone since the scan"


def _gone(role: str, path: str) -> str:
    return f"the keeper {path} is {GONE}" if role == "keeper" else GONE


def is_gone(why: str) -> bool:
    """Whether a skip reason says a file (or its keeper) was not found."""
    return why.endswith(GONE)


def _check(step: Step, keepers: dict[str, str | None]) -> tuple[str | None, bytes | None]:
    """(why ``step`` must not happen now, or None; the blob's bytes, when it is a blob).

    A keeper is verified once per run (``keepers`` remembers the verdict), not once for each
    of its duplicates; the duplicate itself is verified right before it is touched.
    """
    data = None
    for p, want, role in ((step.keeper, step.keeper_digest, "keeper"), (step.path, step.digest, "file")):
        if role == "keeper" and p in keepers:
            if keepers[p]:
                return keepers[p], None
            continue
        try:
            got, blob = _content(p, step.algo)
            why = None if got == want else (f"the keeper {p} changed since the scan" if role == "keeper"
                                            else "changed since the scan")
        except FileNotFoundError:
            why = _gone(role, p)
        except OSError as e:
            why = f"cannot read the {role}: {e.strerror}"
        except NeardupError as e:  # a blob that is gone or cannot be read now
            gone = getattr(e, "reason", "") == "vanished"
            why = _gone(role, p) if gone \
                else f"cannot read the {role}: {e}"
        if role == "keeper":
            keepers[p] = why
        else:
            data = blob
        if why:
            return why, None
    if step.path == step.keeper:
        return "it is the keeper itself", None
    if is_remote(step.path) and is_remote(step.keeper):

        a, b = parse_url(step.path), parse_url(step.keeper)
        if (a.container, a.key) == (b.container, b.key):
            # az:// and abfs:// can spell one blob two ways; treat a possible twin as the keeper
            return "it may be the keeper itself under another URL", None
    if not is_remote(step.path) and not is_remote(step.keeper) and (
            os.path.realpath(step.path) == os.path.realpath(step.keeper) or os.path.samefile(step.path, step.keeper)):
        return "it is the keeper itself under another name (a link)", None
    return None, data


def apply(  # noqa: C901 - one loop over the steps with the manifest's crash points; splits with actions/ (issue 17)
    steps: Iterable[Step],
    *,
    action: str,
    to: str | os.PathLike[str] | None,
    manifest: str | os.PathLike[str] | None = None,
    dry_run: bool = True,
    crash: Callable[[str, int], None] | None = None,
) -> Report:
    """Carry out ``steps``.  With ``dry_run`` only report what would happen.

    ``crash(point, i)``, for tests, is called at each point a real crash could strike
    (``"intent"``: announced, not yet done; ``"moved"``: moved, not yet linked or logged).
    """
    if action not in ACTIONS:
        raise UsageError(f"--action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action == "stack":
        raise UsageError("--action stack moves nothing: it writes the plan's stacks (write_stacks)")
    if action != "delete" and to is None:
        raise UsageError(f"--action {action} needs --to DIR (where the originals are kept for undo)")
    rep = Report()
    steps = list(steps)
    remote = {is_remote(s.path) for s in steps}
    if len(remote) > 1:
        raise UsageError("these results mix local files and blobs: apply them separately")
    blobs = remote == {True}
    if blobs and action in ("hardlink", "symlink"):
        raise UsageError(f"--action {action} is for local files; for blobs use quarantine (or delete)")
    if blobs and to is not None and not is_remote(str(to)):
        raise UsageError("for blobs, --to is a prefix URL such as az://container/quarantine or s3://bucket/quarantine")
    if not blobs and to is not None and is_remote(str(to)):
        raise UsageError("for local files, --to is a local folder")
    keepers: dict[str, str | None] = {}
    if dry_run:
        for s in steps:
            why, _ = _check(s, keepers)
            if why:
                rep.skipped.append((s.path, why))
            else:
                rep.done.append(s.path)
        return rep
    to_dir: Path | str | None = None
    if to is not None:
        to_dir = str(to).rstrip("/") if blobs else Path(to).resolve()
    if isinstance(to_dir, Path):
        to_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("neardup-manifest-%Y%m%dT%H%M%S") + f"-{os.getpid()}-{os.urandom(3).hex()}.jsonl"
    mpath = (Path(manifest) if manifest else (to_dir if isinstance(to_dir, Path) else Path.cwd()) / stamp).absolute()
    rep.manifest = str(mpath)
    m = _Manifest(mpath, {"kind": "header", "format": MANIFEST_FORMAT, "action": action,
                          "to": str(to_dir) if to_dir else None, "cwd": os.getcwd(), "created": time.time()})
    try:
        for i, s in enumerate(steps):
            why, data = _check(s, keepers)
            if why:
                rep.skipped.append((s.path, why))
                m.write({"kind": "skipped", "i": i, "path": s.path, "why": why})
                continue
            dest = None
            if to_dir is not None:
                dest = base = _dest(to_dir, s.path)
                k = 1
                while _exists(dest):
                    dest = _with_suffix(base, k)
                    k += 1
            m.write({"kind": "intent", "i": i, "path": s.path, "digest": s.digest, "keeper": s.keeper,
                     "keeper_digest": s.keeper_digest, "algo": s.algo, "dest": str(dest) if dest else None})
            if crash:
                crash("intent", i)
            if action == "delete":
                _unlink(s.path)
            else:
                assert dest is not None
                _move(s.path, dest, data)
                if crash:
                    crash("moved", i)
                try:
                    if action == "hardlink":
                        os.link(s.keeper, s.path)
                    elif action == "symlink":
                        os.symlink(os.path.abspath(s.keeper), s.path)
                except OSError as e:  # another file system, no link support: the original goes back
                    _move(dest, s.path)
                    why = f"cannot link to the keeper ({e.strerror}); left as it was"
                    rep.skipped.append((s.path, why))
                    m.write({"kind": "skipped", "i": i, "path": s.path, "why": why})
                    continue
            m.write({"kind": "done", "i": i})
            rep.done.append(s.path)
    finally:
        m.close()
    return rep


def write_stacks(stacks: list[Stack], *, to: str | os.PathLike[str], manifest: str | os.PathLike[str] | None = None,
                 dry_run: bool = True) -> Report:
    """Write ``stacks`` as one JSON file (``{"format": "neardup-stacks/1", "stacks": [{"keep",
    "members", "kind"}]}``) at ``to`` (a new file; a folder gets a stamped name inside), for
    photo managers and scripts that group rather than delete; nothing else is touched.  The
    manifest records the file, so ``undo`` removes it again."""
    target = Path(to)
    if is_remote(str(to)):
        raise UsageError("--action stack writes a local JSON file; pass a local --to path")
    if target.is_dir() or str(to).endswith(("/", os.sep)):
        target = target / (time.strftime("neardup-stacks-%Y%m%dT%H%M%S") + f"-{os.getpid()}.json")
    target = target.absolute()
    if target.exists():
        raise UsageError(f"{target} already exists; pass another --to (stacks never overwrite a file)")
    rep = Report(done=[m for s in stacks for m in s.members], written=str(target))
    if dry_run:
        return rep
    body = json.dumps({"format": STACKS_FORMAT, "stacks": [s.to_dict() for s in stacks]}, indent=1,
                      ensure_ascii=False).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    mpath = Path(manifest).absolute() if manifest else target.with_name(target.stem + ".manifest.jsonl")
    rep.manifest = str(mpath)
    m = _Manifest(mpath, {"kind": "header", "format": MANIFEST_FORMAT, "action": "stack", "to": str(target),
                          "cwd": os.getcwd(), "created": time.time()})
    try:
        m.write({"kind": "intent", "i": 0, "path": str(target), "digest": digest_bytes(body, DIGEST).hex(),
                 "keeper": None, "keeper_digest": None, "algo": DIGEST, "dest": None})
        with open(target, "xb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        m.write({"kind": "done", "i": 0})
    finally:
        m.close()
    return rep


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                return  # a line torn by a crash mid-write: nothing after it happened


def undo(manifest: str | os.PathLike[str]) -> Report:
    """Put back everything ``manifest`` records, newest first, each file exactly where it was
    (from any working folder); safe to run again after a crash (it appends what it restored).
    Files a later change made ambiguous are skipped and reported."""
    mpath = Path(manifest).absolute()
    if not mpath.is_file():
        raise UsageError(f"no manifest at {mpath}; pass the file `neardup apply` printed")
    recs = list(_records(mpath))
    if not recs or recs[0].get("format") not in (MANIFEST_FORMAT, *OLD_MANIFEST_FORMATS):
        raise UsageError(f"{mpath} is not a neardup manifest")
    action = recs[0]["action"]
    intents = {r["i"]: r for r in recs if r.get("kind") == "intent"}
    if recs[0]["format"] in OLD_MANIFEST_FORMATS:
        intents = {i: _absolute_intent(r, recs[0], mpath) for i, r in intents.items()}
    undone = {r["i"] for r in recs if r.get("kind") == "undone"}
    rep = Report(manifest=str(mpath))
    m = _Manifest(mpath, None)
    try:
        for i in sorted(intents, reverse=True):
            if i in undone:
                continue
            r = intents[i]
            path, dest = r["path"], r["dest"]
            if action == "stack":
                why = _remove_written(path, r)
                if why is None:
                    rep.done.append(path)
                    m.write({"kind": "undone", "i": i})
                else:
                    rep.skipped.append((path, why))
                continue
            why = _restore(action, path, dest, r)
            if why is None and action != "delete" and not _back_in_place(path, r):
                why = f"not back at {path} with its content after the move; the original stays at {dest}"
            if why is None:
                rep.done.append(path)
                m.write({"kind": "undone", "i": i})
            else:
                rep.skipped.append((path, why))
    finally:
        m.close()
    return rep


def _absolute_intent(r: dict[str, Any], header: dict[str, Any], mpath: Path) -> dict[str, Any]:
    """An intent of a manifest written before paths were absolute: its relative paths were
    relative to the folder apply ran in.  The moved copy's place under ``--to`` spells the
    original's absolute path (``_dest``), which tells that folder; a manifest whose paths cannot
    be placed so is refused rather than restored somewhere else."""
    path = r["path"]
    if is_remote(path) or os.path.isabs(path):
        return r
    dest, to = r.get("dest"), header.get("to")
    base = None
    if dest and to and not is_remote(str(to)):
        was = "/" + os.path.relpath(dest, to)  # _dest re-roots the absolute path under --to
        for cand in (was, os.path.splitext(os.path.splitext(was)[0])[0] + os.path.splitext(was)[1]):
            if cand.endswith("/" + os.path.normpath(path)):  # also when a name clash added ".k"
                base = cand[: -len(os.path.normpath(path)) - 1] or "/"
                break
    if base is None:
        raise UsageError(f"{mpath} was written by an older neardup and records {path!r} relative to the folder "
                         "`neardup apply` ran in, which it does not name; cd to that folder and run `neardup undo` "
                         "there (files are never restored to a guessed place)")
    fixed = dict(r)
    fixed["path"] = os.path.join(base, path)
    keeper = r.get("keeper")
    if keeper and not is_remote(keeper) and not os.path.isabs(keeper):
        fixed["keeper"] = os.path.join(base, keeper)
    return fixed


def _remove_written(path: str, r: dict[str, Any]) -> str | None:
    """Undo of a file neardup wrote (a stacks file): removed if it still holds what was written."""
    if not os.path.exists(path):
        return None
    if file_digest(path, r.get("algo", DIGEST)) != r["digest"]:
        return "changed since it was written; left where it is"
    os.unlink(path)
    return None


def _back_in_place(path: str, r: dict[str, Any]) -> bool:
    """Whether the file at its original path holds the content it had (what 'restored' means)."""
    try:
        return _exists(path) and not (not is_remote(path) and os.path.islink(path)) and \
            file_digest(path, r.get("algo", LEGACY_DIGEST)) == r["digest"]
    except (OSError, NeardupError):
        return False


def _restore(action: str, path: str, dest: str | None, r: dict[str, Any]) -> str | None:
    if action == "delete":
        return None if _exists(path) else "deleted: cannot be restored (use --action quarantine to be able to undo)"
    assert dest is not None
    if not is_remote(path) and os.path.lexists(path + PART):
        os.unlink(path + PART)  # an earlier undo's copy, torn by a crash
    algo = r.get("algo", LEGACY_DIGEST)  # manifests of older versions name no digest
    intact = (_exists(path) and not os.path.islink(path) and file_digest(path, algo) == r["digest"]
              and not (action == "hardlink" and os.path.exists(r["keeper"]) and os.path.samefile(path, r["keeper"])))
    if not _exists(dest):
        if intact:
            return None  # the crash struck before the move: nothing to put back
        return f"the moved copy {dest} is gone"
    if file_digest(dest, algo) != r["digest"]:
        return f"the moved copy {dest} changed; left where it is"
    if intact:  # a crash between writing the copy and removing the original (blobs, other disks)
        _unlink(dest)
        return None
    if _exists(path):
        # only a link this run made may be replaced: a symlink, or the keeper's content
        ours = os.path.islink(path) or (action == "hardlink" and file_digest(path, algo) == r["keeper_digest"])
        if not ours:
            return f"{path} exists again with other content; the original stays at {dest}"
        _unlink(path)
    _move(dest, path)
    return None


def describe(rep: Report, *, action: str, dry_run: bool) -> str:
    verb = {"quarantine": "move to quarantine", "delete": "delete", "hardlink": "replace by a hard link",
            "symlink": "replace by a symbolic link", "stack": "stack"}[action]
    lines = [f"{'would ' if dry_run else ''}{verb}: {p}" for p in rep.done]
    lines += [f"skip {p}: {why}" for p, why in rep.skipped]
    return "\n".join(lines)
