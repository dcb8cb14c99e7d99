"""The result of a scan, and its ``results.json`` / CSV forms (a contract: extend, never rename)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Pair", "Group", "Failure", "ScanResult"]


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    stage: str  # "exact" | "hash" | "crop"
    distance: int | None = None  # bits of the 256-bit hash, where that decided
    score: float | None = None  # layout correlation, where a crop test decided
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"a": self.a, "b": self.b, "stage": self.stage}
        if self.distance is not None:
            d["distance"] = self.distance
        if self.score is not None:
            d["score"] = self.score
        if self.evidence:
            d["evidence"] = self.evidence
        return d


@dataclass(frozen=True, slots=True)
class Group:
    keep: str
    members: list[str]  # includes keep
    reason: str
    pairs: list[Pair]
    digests: dict[str, str] = field(default_factory=dict)  # member -> content digest (hex) at scan time

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"keep": self.keep, "members": self.members, "reason": self.reason,
                             "pairs": [p.to_dict() for p in self.pairs]}
        if self.digests:
            d["digests"] = self.digests
        return d


@dataclass(frozen=True, slots=True)
class Failure:
    path: str
    stage: str
    error: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "stage": self.stage, "error": self.error, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ScanResult:
    groups: list[Group]
    failures: list[Failure]
    stats: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [g.to_dict() for g in self.groups],
                "failures": [f.to_dict() for f in self.failures],
                "stats": self.stats}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    def pairs_csv(self) -> str:
        """One row per pair: a, b, stage, distance, score, keep (the group's keeper)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["a", "b", "stage", "distance", "score", "keep"])
        for g in self.groups:
            for p in g.pairs:
                w.writerow([p.a, p.b, p.stage, "" if p.distance is None else p.distance,
                            "" if p.score is None else p.score, g.keep])
        return buf.getvalue()
