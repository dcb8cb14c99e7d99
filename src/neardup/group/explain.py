"""What a group says about itself: each pair's evidence, and which facts put the keeper first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..features.quality import COLOURFUL, QualityFacts
from ..records import EXTRA_FIELDS, Stage
from ..results import Group, Pair
from .files import FileFacts, why_preferred

__all__ = ["GroupFacts", "evidence_dict", "keeper_reason", "make_group"]


@dataclass(frozen=True)
class GroupFacts:
    """What the result needs about each member row."""

    files: dict[int, list[FileFacts]]  # its files, best first
    images: dict[int, tuple[int, int, str]]  # width, height, format
    quality: dict[int, np.ndarray]
    digest: Callable[[int], bytes]
    roots: Sequence[str]
    encoding: dict[int, float] = field(default_factory=dict)
    resaved: dict[int, str] = field(default_factory=dict)
    consensus: dict[int, int] = field(default_factory=dict)  # agreed member -> its group's size
    older: dict[int, int] = field(default_factory=dict)  # keeper by age -> the younger rival
    containers: dict[int, int] = field(default_factory=dict)  # a member that holds another whole -> that one


def evidence_dict(stage: int, d256: int, p64: int, colour: float, ncc: float,
                  extra: np.ndarray | None = None, *, paths: tuple[str, str] | None = None) -> dict[str, object]:
    """A pair's evidence as results.json writes it (``Pair.evidence``); ``paths`` name the pair's
    rows a and b, so a ``contains`` pair can say which file holds the other (``container``)."""
    ev: dict[str, object] = {"stage": Stage(stage).label, "hash256": d256, "colour": round(colour, 2)}
    if p64 >= 0:
        ev["hash64"] = p64
    if not np.isnan(ncc):
        ev["crop_ncc"] = round(ncc, 4)
    if extra is not None:
        for name, v in zip(EXTRA_FIELDS, extra.tolist()):
            if np.isnan(v):
                continue
            if name == "container":
                if paths is not None:
                    ev["container"] = paths[0] if v > 0 else paths[1]
            else:
                ev[name] = int(v) if name == "inliers" else round(float(v), 4)
    return ev


def keeper_reason(keep: QualityFacts, others: list[QualityFacts], keep_encoding: float, other_encodings: list[float]) -> str:
    """Which facts put the keeper first; encodings as the lineage check left them (a re-save's
    format or quality does not count)."""
    bits = []
    if all(keep.pixels > o.pixels for o in others):
        bits.append("most pixels")
    if keep.lossless and keep_encoding >= 100 and any(e < 100 for e in other_encodings):
        bits.append("lossless")
    elif keep.jpeg_quality and all(keep_encoding > e for e in other_encodings):
        bits.append(f"highest JPEG quality (~{keep.jpeg_quality})")
    if keep.softness < 1.5 and any(o.softness >= keep.softness + 0.15 for o in others):
        bits.append("more real detail (others upscaled or blurred)")
    if keep.colourfulness > COLOURFUL and any(o.colourfulness <= COLOURFUL for o in others):
        bits.append("in colour")
    if keep.border < 0.01 and any(o.border >= 0.01 for o in others):
        bits.append("no added border")
    return "best quality score: " + (", ".join(bits) if bits else "best balance of size, detail and quality")


def make_group(keeper: int, rows: list[int], attach: dict[int, tuple[int, object]], facts: GroupFacts,
               evidence: Callable[[object], dict[str, object]]) -> Group:
    """The result's group: ``keeper``'s best file first, then every other file of ``rows``;
    ``attach`` says through which member and by what evidence each row joined."""
    files_of_row, quality, encoding, resaved = facts.files, facts.quality, facts.encoding, facts.resaved
    kept_file = files_of_row[keeper][0]
    keep = kept_file.path
    members: list[str] = []
    reference: list[str] = []
    pairs: list[Pair] = []
    digests: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    for r in rows:
        fs = files_of_row[r]
        width, height, fmt = facts.images[r]
        for f in fs:
            members.append(f.path)
            if f.reference:
                reference.append(f.path)
            digests[f.path] = facts.digest(r).hex()
            files[f.path] = {"width": width, "height": height, "bytes": f.size, "format": fmt}
        for extra in fs[1:]:
            pairs.append(Pair(fs[0].path, extra.path, "exact", distance=0))
        if r in attach:
            via, ev = attach[r]
            e: dict[str, Any] = dict(evidence(ev))
            stage = str(e["stage"])
            score = {"crop": e.get("crop_ncc"), "local": e.get("aligned_ncc"), "contains": e.get("aligned_ncc"),
                     "embedding": e.get("cosine"), "similar": e.get("cosine")}.get(stage)
            pairs.append(Pair(files_of_row[via][0].path, fs[0].path, stage,
                              distance=int(e["hash256"]) if stage == "hash" else None,
                              score=float(score) if score is not None else None, evidence=e))
    copies = files_of_row[keeper][1:]
    among = (f"kept {keep!r}: {why_preferred(kept_file, copies[0], facts.roots)}" if copies else "")
    if len(rows) == 1:
        reason = f"identical bytes; {among}"
    else:
        # the keeper's facts against the members it contended with (all, without a consensus)
        others = [r for r in rows if r != keeper]
        if kept_file.reference:  # the keeper contended with the other reference members only
            others = [r for r in others if files_of_row[r][0].reference] or others
        tied = [r for r in others if r in facts.consensus or keeper not in facts.consensus] or others
        edited = len(others) - len(tied)
        reason = keeper_reason(QualityFacts.from_row(quality[keeper]), [QualityFacts.from_row(quality[r]) for r in tied],
                               encoding[keeper], [encoding[r] for r in tied])
        if keeper in facts.older:
            rival = files_of_row[facts.older[keeper]][0].path
            reason = (f"the oldest file: {rival!r}, saved later, wins only by its encoding or its pixel "
                      "count, which a re-save or an enlargement gives (a copy is never better than its source); " + reason.replace("best quality score: ", "", 1))
        if edited:
            reason = (f"the copy the others agree on: {edited} of the {len(rows) - 1} others each differ from it by "
                      f"an edit of their own (group/consensus.py); " + reason)
        for r in rows:
            if r != keeper and r in resaved:
                reason += f"; not {files_of_row[r][0].path!r}: {resaved[r]}"
            if r != keeper and facts.containers.get(r) in rows:
                reason += (f"; not {files_of_row[r][0].path!r}: it shows "
                           f"{files_of_row[facts.containers[r]][0].path!r} whole inside a larger frame (contains)")
        if copies:
            reason += f"; of {len(copies) + 1} byte-identical files, {among}"
        if kept_file.reference and any(not files_of_row[r][0].reference for r in rows):
            several = sum(files_of_row[r][0].reference for r in rows) > 1
            reason = ("a reference file (under --reference) is always the keeper"
                      + ("; of the reference members, " if several else "; ") + reason)
    members = [keep] + sorted(m for m in members if m != keep)
    return Group(keep, members, reason, pairs, {m: digests[m] for m in members}, {m: files[m] for m in members},
                 sorted(reference))
