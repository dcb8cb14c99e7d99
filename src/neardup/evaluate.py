"""Score a result against a labelled truth file (the ``truth.csv`` format of the dev benchmark).

Truth rows: ``file,group,role,transform,tier,degraded``; files are matched by base name.
Scores: pair precision/recall/F1 over all within-group pairs, the share of copies put with
their original per tier and per edit, false pairs touching hard negatives, keep accuracy.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections import defaultdict
from pathlib import PurePath
from typing import Any

__all__ = ["load_truth", "score_file", "score_pairs", "format_scores"]


def _name(p: str) -> str:
    return PurePath(p.replace("\\", "/")).name


def load_truth(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and {"path_a", "path_b"} <= set(rows[0]):
        return rows
    if rows and not {"file", "group", "role"} <= set(rows[0]):
        raise ValueError(f"{path} needs the columns file, group, role (and transform, tier, degraded), "
                         "or path_a, path_b (a list of true pairs)")
    return rows


def score_pair_list(truth: list[dict[str, str]], results_path: str) -> dict[str, Any]:
    """Score against a list of true pairs (``path_a, path_b``, paths relative to the data folder):
    how many are in one group, and how many grouped pairs are not on the list (all the files
    are distinct photos otherwise, so those are false)."""
    with open(results_path, encoding="utf-8") as f:
        obj = json.load(f)

    def key(p: str) -> str:
        parts = PurePath(p.replace("\\", "/")).parts
        return "/".join(parts[-2:])

    group_of: dict[str, int] = {}
    predicted: set[frozenset[str]] = set()
    for i, g in enumerate(obj["groups"]):
        names = sorted({key(m) for m in g["members"]})
        for m in names:
            group_of[m] = i
        predicted.update(frozenset(x) for x in itertools.combinations(names, 2))
    true = {frozenset((key(r["path_a"]), key(r["path_b"]))) for r in truth}
    found = sum(1 for t in true if len({group_of.get(x, -1 - k) for k, x in enumerate(t)}) == 1)
    return {"true_pairs": len(true), "found": found, "recall": round(found / max(1, len(true)), 4),
            "predicted_pairs": len(predicted), "false_pairs": len(predicted - true)}


def _read(path: str) -> tuple[set[frozenset[str]], list[dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    pairs: set[frozenset[str]] = set()
    groups: list[dict[str, Any]] = []
    if text.lstrip().startswith(("{", "[")):
        obj = json.loads(text)
        raw = obj["groups"] if isinstance(obj, dict) else obj
        for g in raw:
            members = g["members"] if isinstance(g, dict) else list(g)
            keep = g.get("keep") if isinstance(g, dict) else None
            groups.append({"members": members, "keep": keep})
            names = sorted({_name(m) for m in members})
            pairs.update(frozenset(p) for p in itertools.combinations(names, 2))
    else:
        for row in csv.reader(text.splitlines()):
            if len(row) < 2 or row[0].strip().lower() in ("a", "left", "file1", "path1"):
                continue
            a, b = _name(row[0]), _name(row[1])
            if a != b:
                pairs.add(frozenset((a, b)))
    return pairs, groups


def score_pairs(truth: list[dict[str, str]], pairs: set[frozenset[str]], groups: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {r["file"]: r for r in truth}
    members: dict[str, list[str]] = defaultdict(list)
    for r in truth:
        members[r["group"]].append(r["file"])
    true_pairs = {frozenset(p) for ms in members.values() for p in itertools.combinations(sorted(ms), 2)}
    known = {p for p in pairs if all(n in by_name for n in p)}
    tp = len(known & true_pairs)
    precision = tp / len(known) if known else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    original = {r["group"]: r["file"] for r in truth if r.get("role") == "original"}
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in truth:
        if r.get("role") != "copy" or r["group"] not in original:
            continue
        hit = frozenset((r["file"], original[r["group"]])) in pairs
        for key in (f"tier {r.get('tier', '?')}", "edit " + r.get("transform", "?").split(":")[0]):
            found[key][0] += hit
            found[key][1] += 1
    negatives = {r["file"] for r in truth if r.get("role") == "negative"}
    false_pairs = known - true_pairs
    keep_ok = keep_n = 0
    for g in groups:
        if not g["keep"]:
            continue
        rows = [by_name[_name(m)] for m in g["members"] if _name(m) in by_name]
        origs = [r for r in rows if r.get("role") == "original"]
        if len(origs) != 1:
            continue
        copies = [r for r in rows if r["group"] == origs[0]["group"] and r.get("role") == "copy"]
        if copies and all(r.get("degraded") == "1" for r in copies):
            keep_n += 1
            keep_ok += _name(g["keep"]) == origs[0]["file"]
    return {
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "predicted_pairs": len(pairs), "true_pairs": len(true_pairs), "false_pairs": len(false_pairs),
        "false_pairs_touching_hard_negatives": sum(1 for p in false_pairs if p & negatives),
        "copy_recall": {k: round(v[0] / v[1], 4) for k, v in sorted(found.items())},
        "copy_counts": {k: v[1] for k, v in sorted(found.items())},
        "keep_accuracy": round(keep_ok / keep_n, 4) if keep_n else None, "keep_groups_judged": keep_n,
    }


def score_file(truth: list[dict[str, str]], results_path: str) -> dict[str, Any]:
    if truth and "path_a" in truth[0]:
        return score_pair_list(truth, results_path)
    pairs, groups = _read(results_path)
    return score_pairs(truth, pairs, groups)


def format_scores(s: dict[str, Any]) -> str:
    if "found" in s:
        return (f"true pairs found {s['found']} of {s['true_pairs']} (recall {s['recall']:.3f}); "
                f"{s['predicted_pairs']} pairs grouped, {s['false_pairs']} not on the list")
    lines = [f"pairs: precision {s['precision']:.4f}  recall {s['recall']:.4f}  F1 {s['f1']:.4f}  "
             f"({s['predicted_pairs']} predicted, {s['true_pairs']} true, {s['false_pairs']} false, "
             f"{s['false_pairs_touching_hard_negatives']} on hard negatives)"]
    for k, v in s["copy_recall"].items():
        lines.append(f"  copy recall {k:<22} {v:.3f}  (n={s['copy_counts'][k]})")
    if s["keep_accuracy"] is not None:
        lines.append(f"keep accuracy {s['keep_accuracy']:.3f} over {s['keep_groups_judged']} groups")
    return "\n".join(lines)
