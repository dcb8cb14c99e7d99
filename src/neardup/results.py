"""The result of a scan, and its ``results.json`` / CSV forms (a contract: extend, never rename).

``results.json`` is also read back (by ``report``, ``apply`` and ``eval``): :func:`load_results`
is the one place that checks a file is one, so every command refuses a foreign file alike.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = ["Pair", "Group", "Failure", "Root", "ScanResult", "load_results", "resolve_member", "KINDS", "kind_of_stage",
           "loosest_kind", "evidence_fields", "lies_under"]

#: the kinds of sameness, strictest first: ``copy`` (the same pixels, edited or not),
#: ``contains`` (one shows the other whole inside a larger frame), ``similar`` (another shot of
#: the same scene, thorough ``--similar``)
KINDS = ("copy", "contains", "similar")


def kind_of_stage(stage: str) -> str:
    """The kind of sameness a pair's stage establishes."""
    return stage if stage in ("contains", "similar") else "copy"


def evidence_fields(distance: int | None, score: float | None, evidence: dict[str, Any]) -> dict[str, Any]:
    """A pair's ``distance``, ``score`` and ``evidence`` as results.json writes them (each only
    where there is one): a scan's pairs and a query's matches alike."""
    d: dict[str, Any] = {}
    if distance is not None:
        d["distance"] = distance
    if score is not None:
        d["score"] = score
    if evidence:
        d["evidence"] = evidence
    return d


def loosest_kind(kinds: Iterable[str]) -> str:
    """The least strict of ``kinds`` (``copy`` when there is none): what a chain of pairs proves."""
    return KINDS[max((KINDS.index(k) for k in kinds), default=0)]


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    stage: str  # "exact" | "hash" | "crop" | "embedding" | "local" | "similar" | "contains"
    distance: int | None = None  # bits of the 256-bit hash, where that decided
    score: float | None = None  # layout correlation, where a crop test decided
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``copy``, ``contains`` or ``similar`` (:data:`KINDS`)."""
        return kind_of_stage(self.stage)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "stage": self.stage, "kind": self.kind,
                **evidence_fields(self.distance, self.score, self.evidence)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pair:
        return cls(str(d["a"]), str(d["b"]), str(d.get("stage", "")), d.get("distance"), d.get("score"),
                   dict(d.get("evidence") or {}))


@dataclass(frozen=True, slots=True)
class Group:
    keep: str
    members: list[str]  # includes keep
    reason: str
    pairs: list[Pair]
    digests: dict[str, str] = field(default_factory=dict)  # member -> content digest (hex) at scan time
    #: member -> what a person checks a keeper choice by: width, height, bytes, format
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: members under a ``--reference`` root: never acted on; the keeper is one when any is
    reference: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The group's loosest kind of sameness (:data:`KINDS`): a group with one other shot is
        ``similar`` as a whole, whatever its copies."""
        return loosest_kind(p.kind for p in self.pairs)

    def member_kinds(self) -> dict[str, str]:
        """Each member's kind of sameness to the keeper: the loosest along the pairs that tie it
        to the keeper (a copy of another shot is another shot).  Pair ``b`` joined through ``a``
        (make_group); a member no pair names is a ``copy`` (results of an older neardup)."""
        via = {p.b: p for p in self.pairs if p.b != self.keep}
        out: dict[str, str] = {}
        for m in self.members:
            seen, kinds, at = {m}, [], m
            while at in via and at != self.keep:
                kinds.append(via[at].kind)
                at = via[at].a
                if at in seen:
                    break
                seen.add(at)
            out[m] = loosest_kind(kinds)
        out[self.keep] = "copy"
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"keep": self.keep, "members": self.members, "reason": self.reason,
                             "kind": self.kind, "pairs": [p.to_dict() for p in self.pairs]}
        if self.digests:
            d["digests"] = self.digests
        if self.files:
            d["files"] = self.files
        if self.reference:
            d["reference"] = self.reference
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Group:
        return cls(str(d["keep"]), [str(m) for m in d["members"]], str(d.get("reason", "")),
                   [Pair.from_dict(p) for p in d.get("pairs") or []], dict(d.get("digests") or {}),
                   dict(d.get("files") or {}), [str(m) for m in d.get("reference") or []])


@dataclass(frozen=True, slots=True)
class Failure:
    path: str
    stage: str
    error: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "stage": self.stage, "error": self.error, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Failure:
        return cls(str(d["path"]), str(d.get("stage", "")), str(d.get("error", "")), str(d.get("reason", "")))


@dataclass(frozen=True, slots=True)
class Root:
    """A folder, file or URL as the user gave it, and where it was at scan time: relative
    paths in the results are relative to the scan's working folder, wherever they are read."""

    path: str
    resolved: str
    reference: bool = False  # given with --reference: its files are never acted on

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "resolved": self.resolved}
        if self.reference:
            d["reference"] = True
        return d


@dataclass(frozen=True, slots=True)
class ScanResult:
    groups: list[Group]
    failures: list[Failure]
    stats: dict[str, Any]
    roots: list[Root] = field(default_factory=list)
    cwd: str | None = None  # the working folder of the scan: what relative member paths are relative to

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"groups": [g.to_dict() for g in self.groups],
                             "failures": [f.to_dict() for f in self.failures],
                             "stats": self.stats}
        if self.roots or self.cwd is not None:
            d["scan"] = {"cwd": self.cwd, "roots": [r.to_dict() for r in self.roots]}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    def pairs_csv(self) -> str:
        """One row per pair: a, b, stage, distance, score, keep (the group's keeper), kind."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["a", "b", "stage", "distance", "score", "keep", "kind"])
        for g in self.groups:
            for p in g.pairs:
                w.writerow([p.a, p.b, p.stage, "" if p.distance is None else p.distance,
                            "" if p.score is None else p.score, g.keep, p.kind])
        return buf.getvalue()

    def is_reference(self, path: str) -> bool:
        """Whether a member as given in these results lies under a ``--reference`` root."""
        where = self.resolve(path)
        return any(r.reference and lies_under(where, r.resolved) for r in self.roots)

    def resolve(self, path: str) -> str:
        """The absolute path of a member as given in these results (see :func:`resolve_member`)."""
        return resolve_member(path, self.cwd)

    @classmethod
    def from_dict(cls, d: object, *, source: str = "the results") -> ScanResult:
        """Read a ``results.json`` object back; a :class:`UsageError` naming what is wrong if it
        is not one (``source`` names the file in the message)."""
        what = f"{source} is not a neardup results.json"
        if not isinstance(d, dict) or not isinstance(d.get("groups"), list) or not isinstance(d.get("stats"), dict):
            raise UsageError(f"{what} (it needs 'groups' and 'stats'); pass the file `neardup scan -o` wrote")
        try:
            groups = [Group.from_dict(g) for g in d["groups"]]
            failures = [Failure.from_dict(f) for f in d.get("failures") or []]
        except (KeyError, TypeError, AttributeError) as e:
            raise UsageError(f"{what}: a group or failure lacks {e}; pass the file `neardup scan -o` wrote") from None
        for g in groups:
            if g.keep not in g.members:
                raise UsageError(f"{what}: the keeper {g.keep!r} is not among its group's members")
        scan = d.get("scan") or {}
        roots = [Root(str(r["path"]), str(r["resolved"]), bool(r.get("reference", False)))
                 for r in scan.get("roots") or [] if isinstance(r, dict)]
        cwd = scan.get("cwd")
        return cls(groups, failures, dict(d["stats"]), roots, str(cwd) if cwd is not None else None)


def resolve_member(path: str, cwd: str | None) -> str:
    """A member path as the scan reported it, made absolute: URLs and absolute paths as they
    are, a relative path against the scan's working folder ``cwd`` (the current folder for
    results that do not record one)."""
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(cwd if cwd is not None else os.getcwd(), path))


def lies_under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or lies under it (as strings: paths as listed, roots as given,
    URLs alike)."""
    base = root.rstrip("/") if root not in ("/", "") else root
    return path == root or path == base or path.startswith(base + "/") or (base == "/" and path.startswith("/"))


def load_results(path: str | os.PathLike[str]) -> ScanResult:
    """Read and check a ``results.json`` file (every command that takes one uses this)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}; pass the results.json of `neardup scan`") from None
    except ValueError as e:
        raise UsageError(f"{path} is not a neardup results.json (not JSON: {e}); pass the file `neardup scan -o` "
                         "wrote") from None
    return ScanResult.from_dict(raw, source=str(path))
