"""Stages 6-8, group: verified pairs -> guarded groups -> each group's keeper and its reasons.

People's "not a duplicate" decisions drop their pairs first; union-find joins what is left;
the keeper's contest is settled (detail and lineage read where it turns on them); the guard
then splits each component into chain-free groups around its keeper (group/unionfind.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ..features.extract import FEATURE_VERSION
from ..features.lineage import LINEAGE_VERSION
from ..group.explain import GroupFacts, evidence_dict, make_group
from ..group.files import FileFacts, file_preference, root_index, under_any
from ..group.settle import DETAIL_VERSION, MemberFacts, settle_keepers
from ..group.unionfind import UnionFind, guarded_groups
from ..records import EXTRA_FIELDS, PairEvidence, SearchColumns, Stage, no_extra
from ..results import Group
from ..sources import is_remote, read_bytes
from ..store import FeatureCache
from ..verify.rules import VerifyParams, verify_batch
from ..version import __version__
from .rows import RowAccess

if TYPE_CHECKING:
    from .thorough import Thorough

__all__ = ["Grouped", "group_pairs", "apart_rows"]


@dataclass
class Grouped:
    groups: list[Group] = field(default_factory=list)
    verified: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # rows with a verified pair or a byte copy
    verified_pairs: int = 0
    measured: int = 0  # members the keeper's detail check measured
    reused_components: int = 0  # components whose groups the last run under the same key made


def apart_rows(fc: FeatureCache, cols: SearchColumns) -> dict[int, set[int]]:
    """Rows a person marked "not a duplicate" of each other (neardup apply --decisions)."""
    out: dict[int, set[int]] = {}
    fc.translate_decisions()
    apart = fc.not_duplicates()
    n = len(cols.digests)
    if not apart or not n:
        return out
    flat = cols.digests.view(f"V{cols.digests.shape[1]}").ravel()

    def row_of(d: bytes) -> int:
        r = int(np.searchsorted(flat, np.frombuffer(d, dtype=flat.dtype))[0])
        return r if r < n and cols.digest(r) == d else -1

    for da, db in apart:
        ra, rb = row_of(da), row_of(db)
        if ra >= 0 and rb >= 0:
            out.setdefault(ra, set()).add(rb)
            out.setdefault(rb, set()).add(ra)
    return out


def _components(pairs: PairEvidence) -> list[list[int]]:
    """Connected components over the rows that have a verified pair, not over every row."""
    a, b = pairs.pairs.a, pairs.pairs.b
    nodes = np.unique(np.concatenate([a, b]))
    uf = UnionFind(len(nodes))
    for x, y in zip(np.searchsorted(nodes, a).tolist(), np.searchsorted(nodes, b).tolist()):
        uf.union(x, y)
    return [[int(nodes[i]) for i in c] for c in uf.components().values()]


def _containers(pairs: PairEvidence) -> dict[int, int]:
    """Rows that hold another row whole inside a larger frame (``contains`` pairs) -> that row."""
    p = pairs.pairs
    sign = pairs.extra[:, EXTRA_FIELDS.index("container")]
    out: dict[int, int] = {}
    for k in np.flatnonzero((p.stage == Stage.CONTAINS) & np.isfinite(sign)).tolist():
        holder, held = (int(p.a[k]), int(p.b[k])) if sign[k] > 0 else (int(p.b[k]), int(p.a[k]))
        out[holder] = held
    return out


def _file_facts(rows: list[int], fc: FeatureCache, cols: SearchColumns, paths: list[str], reference: Sequence[str]
                ) -> dict[int, list[FileFacts]]:
    """The files of each of ``rows``, best first (a reference file first of all): the one a
    group keeps, when its image wins."""
    by_digest = fc.run_files([cols.digest(r) for r in rows])
    return {r: sorted((FileFacts(f.path, f.size, f.mtime_ns, root_index(f.path, paths),
                                 bool(reference) and under_any(f.path, reference))
                       for f in by_digest[cols.digest(r)]), key=file_preference) for r in rows}


def _group_facts(rows: list[int], all_files: dict[int, list[FileFacts]], fc: FeatureCache, cols: SearchColumns,
                 paths: list[str]) -> tuple[MemberFacts, GroupFacts]:
    """What the keeper contest and the groups need about ``rows`` (the files of every member
    row: ``all_files``)."""
    files = {r: all_files[r] for r in rows}
    got = fc.fetch([cols.digest(r) for r in rows], ("quality", "width", "height", "format", "sig", "colour", "d256"))
    width = dict(zip(rows, got["width"].tolist()))
    height = dict(zip(rows, got["height"].tolist()))
    fmt = dict(zip(rows, got["format"].tolist()))
    quality = dict(zip(rows, got["quality"].copy()))
    member = MemberFacts(cols.digest, quality, width, height, fmt, {r: [f.path for f in fs] for r, fs in files.items()},
                         dict(zip(rows, got["sig"])), dict(zip(rows, got["colour"])), dict(zip(rows, got["d256"])),
                         # a blob's time is its upload's, not its making's: age is read for local files only
                         {r: min(f.mtime_ns for f in fs) for r, fs in files.items()
                          if not any(is_remote(f.path) for f in fs)})
    group = GroupFacts(all_files, {r: (int(width[r]), int(height[r]), str(fmt[r])) for r in rows}, quality, cols.digest,
                       paths)
    return member, group


def group_pairs(pairs: PairEvidence, cols: SearchColumns, fc: FeatureCache, access: RowAccess, paths: list[str],
                params: VerifyParams, *, apart: dict[int, set[int]], thorough: Thorough | None, threads: Executor,
                max_pixels: int, reference: Sequence[str] = (), reference_groups: bool = False,
                memo_key: str | None = None) -> Grouped:
    """The groups of one run's verified ``pairs`` (one row per pair), keepers first.

    A content with a file under one of the ``reference`` roots is its group's keeper (the best
    of them by the usual rules when there are several); groups whose every file is a reference
    file are dropped unless ``reference_groups``.  With ``memo_key`` (a fast run's key), a
    component whose contents, files, pairs and decisions are all as the last run under that key
    saw them takes that run's groups as they were: the keeper contest is not settled again."""
    if apart and len(pairs):
        p = pairs.pairs
        pairs = pairs.select(np.array([y not in apart.get(x, ()) for x, y in zip(p.a.tolist(), p.b.tolist())],
                                      dtype=bool))
    out = Grouped(verified_pairs=len(pairs))
    out.verified = cols.counts > 1  # byte copies are verified by their digest
    out.verified[pairs.pairs.a] = True
    out.verified[pairs.pairs.b] = True
    comps = _components(pairs)
    member_rows = sorted({r for c in comps for r in c})
    dup_rows = np.flatnonzero(cols.counts > 1).tolist()
    files = _file_facts(sorted(set(member_rows) | set(dup_rows)), fc, cols, paths, reference)
    signatures: list[str] = []
    known: dict[str, str] = {}
    if memo_key is not None:
        signatures = _signatures(comps, pairs, files, cols.digest, apart, params, paths, reference)
        known = fc.previous_groups(memo_key, signatures)
    todo = [c for k, c in enumerate(comps) if not signatures or signatures[k] not in known]
    out.reused_components = len(comps) - len(todo)
    # a component the last run grouped as it is now takes its groups from the memo: only the
    # others' rows (and lone contents with byte copies) need their features read
    in_comp = set(member_rows)
    member, facts = _group_facts(sorted({r for c in todo for r in c} | (set(dup_rows) - in_comp)), files, fc, cols,
                                 paths)
    containers = _containers(pairs)
    member = replace(member, containers=containers)
    settled = settle_keepers(todo, member, memo=fc, read=read_bytes, threads=threads, max_pixels=max_pixels,
                             order_key=lambda r: file_preference(facts.files[r][0]))
    out.measured = settled.measured
    facts = GroupFacts(facts.files, facts.images, settled.quality, facts.digest, facts.roots, settled.encoding,
                       settled.resaved, settled.consensus, settled.older, containers)
    guard = _Guard(pairs, access, params, apart, thorough, settled.scores, facts, strong=params.strong_threshold)
    made: dict[str, str] = {}
    for k, comp in enumerate(comps):
        if signatures and signatures[k] in known:
            groups = [Group.from_dict(g) for g in json.loads(known[signatures[k]])]
        else:
            groups = [make_group(keeper, rows_in, attach, facts, guard.evidence)
                      for keeper, rows_in, attach in guarded_groups(comp, guard.edges, guard.rank, guard.verify_pair,
                                                                    apart)]
        if signatures:
            made[signatures[k]] = known.get(signatures[k]) or json.dumps([g.to_dict() for g in groups])
        out.groups.extend(groups)
    if memo_key is not None:
        fc.save_groups(memo_key, made)
    no_copies = GroupFacts(facts.files, facts.images, facts.quality, facts.digest, facts.roots)
    for r in dup_rows:
        if r not in in_comp:
            out.groups.append(make_group(r, [r], {}, no_copies, guard.evidence))
    if reference and not reference_groups:
        out.groups = [g for g in out.groups if len(g.reference) < len(g.members)]
    out.groups.sort(key=lambda g: (-len(g.members), g.keep))
    return out


#: what a component's memoised groups depend on besides its data (bump when grouping changes)
GROUPS_MEMO = "groups-1"


def _signatures(comps: list[list[int]], pairs: PairEvidence, files: dict[int, list[FileFacts]],
                digest: Callable[[int], bytes], apart: dict[int, set[int]], params: VerifyParams, paths: list[str],
                reference: Sequence[str]) -> list[str]:
    """Per component, a digest of everything its groups are made from: its contents, their files
    (path, size, time, root), its pairs' evidence and the decisions among its rows, and the
    settings and code versions that turn those into groups."""
    settings = json.dumps([GROUPS_MEMO, __version__, FEATURE_VERSION, DETAIL_VERSION, LINEAGE_VERSION,
                           params.hash_threshold, params.crop_ncc, params.strong_threshold, paths, list(reference)])
    p = pairs.pairs
    comp_of = {r: k for k, comp in enumerate(comps) for r in comp}
    by_comp: dict[int, list[int]] = {}
    for k, a in enumerate(p.a.tolist()):
        by_comp.setdefault(comp_of[a], []).append(k)
    out = []
    for k, comp in enumerate(comps):
        h = hashlib.blake2b(settings.encode(), digest_size=20)
        for r in sorted(comp):
            h.update(digest(r))
            for f in files[r]:
                h.update(f"{f.path}\x00{f.size}\x00{f.mtime_ns}\x00{f.root}\x00{int(f.reference)}\x01".encode())
            for other in sorted(digest(x) for x in apart.get(r, ())):  # by content: row ids shift
                h.update(b"apart" + other)
        rows = np.asarray(by_comp.get(k, []), np.int64)
        for x, y in zip(p.a[rows].tolist(), p.b[rows].tolist()):
            h.update(digest(x) + digest(y))
        for column in (p.stage, p.d256, p.p64, p.colour, p.ncc):
            h.update(np.ascontiguousarray(column[rows]).tobytes())
        h.update(np.ascontiguousarray(pairs.extra[rows]).tobytes())
        out.append(h.hexdigest())
    return out


class _Guard:
    """The grouping guard's view of the pairs: edges, keeper rank, evidence, and the check of
    a member against a keeper it has no verified pair with."""

    def __init__(self, pairs: PairEvidence, access: RowAccess, params: VerifyParams, apart: dict[int, set[int]],
                 thorough: Thorough | None, scores: dict[int, float], facts: GroupFacts, *, strong: int) -> None:
        self.pairs, self.access, self.params, self.apart, self.thorough = pairs, access, params, apart, thorough
        self.scores, self.facts = scores, facts
        p = pairs.pairs
        # an edge's evidence is its index in the pair columns until a group reports it
        self.edges: dict[int, dict[int, tuple[bool, object]]] = {}
        strong_edge = ((p.stage == Stage.HASH) & (p.d256 <= strong)).tolist()
        for k, (x, y) in enumerate(zip(p.a.tolist(), p.b.tolist())):
            self.edges.setdefault(x, {})[y] = (strong_edge[k], k)
            self.edges.setdefault(y, {})[x] = (strong_edge[k], k)

    def paths(self, a: int, b: int) -> tuple[str, str]:
        return self.facts.files[a][0].path, self.facts.files[b][0].path

    def evidence(self, ev: object) -> dict[str, object]:
        if isinstance(ev, int):
            p = self.pairs.pairs
            return evidence_dict(int(p.stage[ev]), int(p.d256[ev]), int(p.p64[ev]), float(p.colour[ev]),
                                 float(p.ncc[ev]), self.pairs.extra[ev], paths=self.paths(int(p.a[ev]), int(p.b[ev])))
        return ev  # type: ignore[return-value]

    def rank(self, r: int) -> tuple[bool, float, tuple[int, int, int, int, int, str]]:
        """Best keeper first: a content with a reference file, then the keeper contest's score."""
        best = self.facts.files[r][0]
        return (not best.reference, -round(self.scores[r], 6), file_preference(best))

    def verify_pair(self, k: int, r: int) -> object | None:
        a, b = min(k, r), max(k, r)
        if b in self.apart.get(a, ()):
            return None
        ver = verify_batch(np.array([a]), np.array([b]), np.array([-1]), fetch=self.access.fetch,
                           flags=self.access.flags, params=self.params, load_sigs=self.access.load_sigs,
                           crop_cache=self.access.crops)
        extra = no_extra(1)[0]
        if not len(ver) and self.thorough is not None:
            got = self.thorough.verify_one(a, b)
            if got is None:
                return None
            ver, extra = got
        if not len(ver):
            return None
        return evidence_dict(int(ver.stage[0]), int(ver.d256[0]), -1, float(ver.colour[0]), float(ver.ncc[0]), extra,
                             paths=self.paths(a, b))
