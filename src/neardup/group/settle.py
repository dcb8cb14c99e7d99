"""The keeper's readers: the detail measurements and lineage readings that ``keeper.settle``
asks for, read from the files in threads and memoised by content in the store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import DecodeError
from ..features.decode import jpeg_scale, native_softness
from ..features.jpeg import ijg_table, read_header
from ..features.lineage import LINEAGE_VERSION, block_coefficients, carries_table, primary_quality
from ..features.quality import QUALITY_FIELDS
from ..sources import ReadError
from ..store import DetailRow, LineageRow
from .consensus import agreed_members
from .keeper import AGE_MARGIN_NS, Contest, age_decides, provisional_scores, settle

__all__ = ["KeeperMemo", "MemberFacts", "Settled", "settle_keepers", "DETAIL_VERSION"]

logger = logging.getLogger(__name__)

#: version of the keeper check's measurement (features.decode.native_softness)
DETAIL_VERSION = "detail-1"
#: how a memoised lineage verdict was found: the rival's own table in the member's pixels, or
#: some JPEG's in a lossless member's, or the JPEG a lossless rival's pixels came from
LINEAGE_RIVAL, LINEAGE_JPEG, LINEAGE_SIBLING = 1, 2, 3
_LOSSLESS = QUALITY_FIELDS.index("lossless")


class KeeperMemo(Protocol):
    """Where measurements and readings are kept between runs (the feature cache)."""

    def get_detail(self, keys: Sequence[tuple[bytes, int]], version: str) -> dict[tuple[bytes, int], float]: ...

    def put_detail(self, rows: Sequence[DetailRow]) -> None: ...

    def get_lineage(self, pairs: Sequence[tuple[bytes, bytes]], version: str
                    ) -> dict[tuple[bytes, bytes], tuple[float, int]]: ...

    def put_lineage(self, rows: Sequence[LineageRow]) -> None: ...


@dataclass(frozen=True)
class MemberFacts:
    """What the keeper's readers know about each group member row."""

    digest: Callable[[int], bytes]
    quality: dict[int, np.ndarray]
    width: dict[int, int]
    height: dict[int, int]
    fmt: dict[int, str]
    paths: dict[int, list[str]]  # its files, best first: any one holds its bytes
    layout: dict[int, np.ndarray] = field(default_factory=dict)  # 32x32 luminance (the consensus)
    colour: dict[int, np.ndarray] = field(default_factory=dict)  # 4x4 colour grid
    d256: dict[int, np.ndarray] = field(default_factory=dict)  # hashes (orientation)
    mtime_ns: dict[int, int] = field(default_factory=dict)  # its oldest file's modification time
    containers: dict[int, int] = field(default_factory=dict)  # a member that holds another whole -> that one


@dataclass
class Settled:
    """The keeper contests' outcome per row."""

    scores: dict[int, float] = field(default_factory=dict)
    quality: dict[int, np.ndarray] = field(default_factory=dict)  # with measured softness
    encoding: dict[int, float] = field(default_factory=dict)  # as the lineage check left it
    resaved: dict[int, str] = field(default_factory=dict)  # members found to be re-saves: what was found
    measured: int = 0
    consensus: dict[int, int] = field(default_factory=dict)  # agreed member -> its group's size, where others were not
    older: dict[int, int] = field(default_factory=dict)  # keeper by age -> the younger member it was preferred to


class _Readers:
    """Detail and lineage readers over the members' files, memoised in ``memo``."""

    def __init__(self, facts: MemberFacts, memo: KeeperMemo, read: Callable[[str], bytes], threads: Executor,
                 max_pixels: int) -> None:
        self.facts, self.memo, self.read, self.threads, self.max_pixels = facts, memo, read, threads, max_pixels
        self.primary: dict[int, int] = {}  # lossless row -> the JPEG quality its pixels came from (0: none)

    def scale_of(self, r: int, side: int) -> int:
        f = self.facts
        return jpeg_scale(f.width[r], f.height[r], side) if f.fmt[r] in ("JPEG", "MPO") else 1

    def softness(self, r: int, side: int) -> tuple[float, int] | None:
        for path in self.facts.paths.get(r, []):
            try:
                return native_softness(self.read(path), min_side=side, max_pixels=self.max_pixels)
            except (ReadError, DecodeError) as e:  # changed or gone since the scan: try another copy, else no proof
                logger.info("keeper detail check: %s: %s; trying another copy", path, e)
        return None

    def measure(self, asks: Iterable[tuple[int, int]]) -> dict[int, tuple[float, int] | None]:
        asks = list(asks)
        keys = [(self.facts.digest(r), self.scale_of(r, side)) for r, side in asks]
        known = self.memo.get_detail(keys, DETAIL_VERSION)
        out: dict[int, tuple[float, int] | None] = {}
        todo = []
        for (r, side), key in zip(asks, keys):
            if key in known:
                out[r] = (known[key], key[1])
            else:
                todo.append((r, side))
        if todo:
            rows = []
            for (r, _), got in zip(todo, self.threads.map(lambda a: self.softness(*a), todo)):
                out[r] = got
                if got is not None:
                    rows.append(DetailRow(self.facts.digest(r), DETAIL_VERSION, got[1], got[0]))
            self.memo.put_detail(rows)
        return out

    def first_bytes(self, r: int) -> bytes | None:
        for path in self.facts.paths.get(r, []):
            try:
                return self.read(path)
            except ReadError:  # changed or gone since the scan: try another copy
                continue
        return None

    def coefficients(self, r: int) -> list[Any]:
        data = self.first_bytes(r)
        return block_coefficients(data, max_pixels=self.max_pixels) if data else []

    def primary_of(self, r: int, coeffs: list[Any] | None = None) -> int:
        """A lossless member's earlier JPEG quality, read once per run: a sibling check asks for
        the rival that was itself just found to be a re-save."""
        if r not in self.primary:
            coeffs = self.coefficients(r) if coeffs is None else coeffs
            self.primary[r] = primary_quality(coeffs) if coeffs else 0
        return self.primary[r]

    def read_lineage(self, r: int, rival: int) -> tuple[float, int]:
        """(the encoding value ``r`` was made from, or -1; LINEAGE_RIVAL / LINEAGE_JPEG / LINEAGE_SIBLING)."""
        coeffs = self.coefficients(r)
        if not coeffs:
            return -1.0, 0
        quality = self.facts.quality
        if self.facts.fmt[rival] in ("JPEG", "MPO"):
            theirs = self.first_bytes(rival)
            hdr = read_header(theirs) if theirs else None
            if hdr is not None and hdr.table is not None and carries_table(coeffs, hdr.table):
                return float(hdr.quality), LINEAGE_RIVAL
        if quality[r][_LOSSLESS]:
            q = self.primary_of(r, coeffs)
            if q:
                return float(q), LINEAGE_JPEG
        elif quality[rival][_LOSSLESS]:
            # a lossless rival made from some JPEG: a JPEG member holding that JPEG's table
            # is its sibling, re-saved from the same source, not the better copy
            q = self.primary_of(rival)
            if q and carries_table(coeffs, ijg_table(q)):
                return float(q), LINEAGE_SIBLING
        return -1.0, 0

    def lineage(self, asks: Iterable[tuple[int, int]]) -> dict[tuple[int, int], tuple[float | None, str]]:
        asks = list(asks)
        digest = self.facts.digest
        keys = [(digest(r), digest(rival)) for r, rival in asks]
        known = self.memo.get_lineage(keys, LINEAGE_VERSION)
        todo = [a for a, k in zip(asks, keys) if k not in known]
        fresh = dict(zip(todo, self.threads.map(lambda a: self.read_lineage(*a), todo)))
        self.memo.put_lineage([LineageRow(digest(r), digest(rival), LINEAGE_VERSION, *fresh[(r, rival)])
                               for r, rival in todo])
        return {a: self.explain(a[1], *(known[k] if k in known else fresh[a])) for a, k in zip(asks, keys)}

    def explain(self, rival: int, made_from: float, kind: int) -> tuple[float | None, str]:
        if made_from < 0:
            return None, ""
        theirs = self.facts.paths[rival][0]
        if kind == LINEAGE_RIVAL:
            return made_from, f"its pixels hold the JPEG quantisation of {theirs!r} (q~{made_from:.0f}): re-saved from it"
        if kind == LINEAGE_SIBLING:
            return made_from, (f"its pixels hold the JPEG blocks (q~{made_from:.0f}) that {theirs!r} holds: "
                               "both re-saved from one JPEG")
        return made_from, (f"a lossless file whose pixels hold JPEG blocks of quality ~{made_from:.0f}: "
                           "re-saved from a JPEG")


#: how far an edited copy's score is put below the agreed members' (scores span a few units)
EDITED = 1000.0


def _contest(rows: list[int], facts: MemberFacts) -> Contest:
    return Contest(rows, np.stack([facts.quality[r] for r in rows]),
                   np.array([max(facts.width[r], facts.height[r]) for r in rows]), np.zeros(len(rows), bool))


def settle_keepers(comps: list[list[int]], facts: MemberFacts, *, memo: KeeperMemo, read: Callable[[str], bytes],
                   threads: Executor, max_pixels: int, order_key: Callable[[int], Any]) -> Settled:
    """Measure the detail and read the lineage each group's keeper choice turns on
    (group/keeper.py), in threads, memoised by content; in groups of three and more, only
    among the members the others agree on (group/consensus.py)."""
    agreed, apart = [], []
    consensus: dict[int, int] = {}
    for whole in comps:
        # a member that shows another one whole inside a larger frame is never the original
        # of it (an inset, a screenshot, a slide): it contends only if every member does so
        members = set(whole)
        holders = [r for r in whole if facts.containers.get(r) in members]
        comp = whole
        if holders and len(holders) < len(whole):
            comp = [r for r in whole if r not in holders]
            apart.append(holders)
        mask = (agreed_members(np.stack([facts.layout[r] for r in comp]), np.stack([facts.colour[r] for r in comp]),
                               np.stack([facts.d256[r] for r in comp]))
                if facts.layout else np.ones(len(comp), dtype=bool))
        if not mask.all() and all(r in facts.mtime_ns for r in comp):
            # the oldest file stays in the contest: the consensus reads resampling noise too
            ages = np.array([facts.mtime_ns[r] for r in comp])
            oldest = int(np.argmin(ages))
            if (np.delete(ages, oldest) - ages[oldest] >= AGE_MARGIN_NS).all():
                mask[oldest] = True
        agreed.append([r for r, m in zip(comp, mask.tolist()) if m])
        if not mask.all():
            apart.append([r for r, m in zip(comp, mask.tolist()) if not m])
            consensus.update((r, len(comp)) for r in agreed[-1])
    contests = [_contest(c, facts) for c in agreed]
    readers = _Readers(facts, memo, read, threads, max_pixels)
    out = Settled(quality=dict(facts.quality), consensus=consensus)
    out.measured = settle(contests, readers.measure, order_key, readers.lineage)
    for c in contests:
        out.scores.update(zip(c.rows, provisional_scores(c).tolist()))
        by_age = (age_decides(c, np.array([facts.mtime_ns[r] for r in c.rows]))
                  if all(r in facts.mtime_ns for r in c.rows) else None)
        # a lossless file whose pixels hold no JPEG blocks was never a JPEG: its encoding is
        # its own whatever its age (a decoded JPEG keeps its block grid through most edits)
        if by_age is not None and c.quality[by_age[1], _LOSSLESS] and not readers.primary_of(c.rows[by_age[1]]):
            by_age = None
        # and where the lineage check found how the two are related, that is the evidence
        if by_age is not None and any(found.made_from is not None and {j, found.rival} == set(by_age)
                                      for j, found in c.lineage.items()):
            by_age = None
        if by_age is not None:
            oldest, top = c.rows[by_age[0]], c.rows[by_age[1]]
            out.scores[oldest] = out.scores[top] + 0.001
            out.older[oldest] = top
        for j, r in enumerate(c.rows):
            out.quality[r] = c.quality[j]
        out.encoding.update(zip(c.rows, c.encoding.tolist()))
        for j, found in c.lineage.items():
            if found.made_from is not None:
                out.resaved[c.rows[j]] = found.how
    for rows in apart:  # edited copies: ranked among themselves, below every agreed member
        c = _contest(rows, facts)
        out.scores.update(zip(c.rows, (provisional_scores(c) - EDITED).tolist()))
        out.encoding.update(zip(c.rows, c.encoding.tolist()))
    return out
