"""Grouping verified pairs: union-find, then a guard against chaining.

Union-find alone chains: A~B and B~C put A and C together however far apart they are.  The
guard: within each connected component the best-quality member is the keeper; a member stays
in the keeper's group only if it is verified against the keeper directly (an existing edge, or
a verification run now) or is joined by a *strong* edge to a member that stays.  Members that
fail form the remaining component, handled the same way.  The outcome depends on the edges
and the quality order (ties broken by path), never on input order or batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["UnionFind", "guarded_groups"]


class UnionFind:
    """Union-find over row ids 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = int(p[x])
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def roots(self) -> np.ndarray:
        """Root of every row, by pointer jumping in NumPy (no Python call per row)."""
        r = self.parent.copy()
        while True:
            nxt = r[r]
            if np.array_equal(nxt, r):
                return r
            r = nxt

    def components(self) -> dict[int, list[int]]:
        """Root -> members, for components of two or more rows."""
        roots = self.roots()
        order = np.argsort(roots, kind="stable")
        r_sorted = roots[order]
        starts = np.r_[0, np.flatnonzero(np.diff(r_sorted)) + 1]
        sizes = np.diff(np.r_[starts, len(r_sorted)])
        out: dict[int, list[int]] = {}
        for s, k in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            out[int(r_sorted[s])] = order[s : s + k].tolist()
        return out


Edge = tuple[int, str, float]  # (neighbour, stage, evidence)


def guarded_groups(
    members: list[int],
    edges: dict[int, dict[int, tuple[bool, object]]],
    rank: Callable[[int], tuple[Any, ...]],
    verify_pair: Callable[[int, int], object | None],
    apart: dict[int, set[int]] | None = None,
) -> list[tuple[int, list[int], dict[int, tuple[int, object]]]]:
    """Split one component into chain-free groups.

    Parameters
    ----------
    members : the rows of one connected component.
    edges : ``edges[x][y] = (strong, evidence)`` for every verified pair inside it.
    rank : sort key, smallest first = best keeper.
    verify_pair : verifies (keeper, row) on demand; returns evidence or ``None``.
    apart : rows a person marked "not a duplicate" of each other never share a group.

    Returns
    -------
    list of ``(keeper, rows, attach)`` where ``attach[row] = (via, evidence)`` says which
    member the row was verified against.  Groups of one are dropped.  Leftovers are split
    into their own components and handled the same way (a work list, not recursion, so a
    long chain cannot overflow the stack).
    """
    out = []
    work = [members]
    while work:
        ordered = sorted(work.pop(), key=rank)
        if len(ordered) < 2:
            continue
        keeper, joined, attach = _keeper_group(ordered, edges, rank, verify_pair, apart or {})
        if len(joined) > 1:
            out.append((keeper, sorted(joined, key=rank), attach))
        work.extend(_components([r for r in ordered if r not in joined], edges))
    return out


def _keeper_group(
    ordered: list[int],
    edges: dict[int, dict[int, tuple[bool, object]]],
    rank: Callable[[int], tuple[Any, ...]],
    verify_pair: Callable[[int, int], object | None],
    apart: dict[int, set[int]],
) -> tuple[int, set[int], dict[int, tuple[int, object]]]:
    keeper = ordered[0]
    inside = set(ordered)
    attach: dict[int, tuple[int, object]] = {}
    joined = {keeper}

    def allowed(r: int) -> bool:
        return not (apart and apart.get(r, set()) & joined)

    direct = edges.get(keeper, {}).items()
    if apart:  # joining order matters only when some rows must stay apart: best first
        direct = sorted(direct, key=lambda kv: rank(kv[0]))  # type: ignore[assignment]
    for r, (_, ev) in direct:
        if r in inside and allowed(r):
            attach[r] = (keeper, ev)
            joined.add(r)
    rest = [r for r in ordered if r not in joined]
    # strong neighbours of members that stay, to a fixpoint, in rank order
    changed = True
    while changed and rest:
        changed = False
        for r in list(rest):
            for nb, (strong, ev) in sorted(edges.get(r, {}).items()):
                if strong and nb in joined and allowed(r):
                    attach[r] = (nb, ev)
                    joined.add(r)
                    rest.remove(r)
                    changed = True
                    break
    # members still tied only weakly: verify against the keeper itself
    for r in list(rest):
        if any(nb in joined for nb in edges.get(r, {})) and allowed(r):
            ev = verify_pair(keeper, r)
            if ev is not None:
                attach[r] = (keeper, ev)
                joined.add(r)
                rest.remove(r)
    return keeper, joined, attach


def _components(rows: list[int], edges: dict[int, dict[int, tuple[bool, object]]]) -> list[list[int]]:
    inside = set(rows)
    seen: set[int] = set()
    comps = []
    for r in rows:
        if r in seen:
            continue
        stack, comp = [r], []
        seen.add(r)
        while stack:
            x = stack.pop()
            comp.append(x)
            for nb in edges.get(x, {}):
                if nb in inside and nb not in seen:
                    seen.add(nb)
                    stack.append(nb)
        if len(comp) > 1:
            comps.append(comp)
    return comps
