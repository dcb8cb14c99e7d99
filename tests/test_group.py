"""Grouping: chain guard, and independence from input order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from neardup.group import UnionFind, guarded_groups


def _run(n, edge_list, scores, verify_ok=frozenset()):
    edges = {}
    uf = UnionFind(n)
    for a, b, strong in edge_list:
        edges.setdefault(a, {})[b] = (strong, {"e": (min(a, b), max(a, b))})
        edges.setdefault(b, {})[a] = (strong, {"e": (min(a, b), max(a, b))})
        uf.union(a, b)
    out = []
    for comp in uf.components().values():
        for keeper, rows, _ in guarded_groups(
            comp, edges, lambda r: (-scores[r], r),
            lambda k, r: {"v": 1} if frozenset((k, r)) in verify_ok else None,
        ):
            out.append((keeper, tuple(sorted(rows))))
    return sorted(out)


def test_weak_chain_is_cut():
    # 0 is best; 0-1 verified, 1-2 verified but weak, 2 not verifiable against 0
    groups = _run(3, [(0, 1, False), (1, 2, False)], {0: 3, 1: 2, 2: 1})
    assert groups == [(0, (0, 1))]


def test_strong_neighbour_keeps_member():
    groups = _run(3, [(0, 1, False), (1, 2, True)], {0: 3, 1: 2, 2: 1})
    assert groups == [(0, (0, 1, 2))]


def test_on_demand_verification_against_keeper():
    groups = _run(3, [(0, 1, False), (1, 2, False)], {0: 3, 1: 2, 2: 1}, {frozenset((0, 2))})
    assert groups == [(0, (0, 1, 2))]


def test_long_chain_does_not_overflow_the_stack():
    n = 5000  # a chain of weak edges: every member splits off on its own, one level each
    groups = _run(n, [(i, i + 1, False) for i in range(n - 1)], {i: -i for i in range(n)})
    assert groups == [(i, (i, i + 1)) for i in range(0, n - 1, 2)]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.data())
def test_groups_do_not_depend_on_edge_order(n, data):
    pairs = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.booleans()), max_size=30))
    pairs = [(a, b, s) for a, b, s in pairs if a != b]
    dedup = {}
    for a, b, s in pairs:
        dedup[(min(a, b), max(a, b))] = s
    pairs = [(a, b, s) for (a, b), s in dedup.items()]
    scores = {i: data.draw(st.integers(0, 3)) for i in range(n)}
    first = _run(n, pairs, scores)
    shuffled = pairs[:]
    random.Random(data.draw(st.integers(0, 1000))).shuffle(shuffled)
    flipped = [(b, a, s) for a, b, s in shuffled]
    assert _run(n, flipped, scores) == first
    for _, rows in first:  # no row in two groups
        assert len(rows) == len(set(rows))
    seen = [r for _, rows in first for r in rows]
    assert len(seen) == len(set(seen))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 50), max_size=20), max_size=6))
def test_seen_pairs_matches_a_python_set(batches):
    import numpy as np

    from neardup.verify.rules import SeenPairs

    seen, ref = SeenPairs(), set()
    for batch in batches:
        mask = seen.fresh(np.array(batch, dtype=np.int64))
        expect = []
        for k in batch:
            expect.append(k not in ref)
            ref.add(k)
        assert mask.tolist() == expect


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 64)), max_size=40), max_size=10))
def test_seen_pairs_keeps_the_least_distance_of_each_key(batches):
    import numpy as np

    from neardup.verify.rules import SeenPairs

    seen, least = SeenPairs(), {}
    for batch in batches:
        keys = np.array([k for k, _ in batch], dtype=np.int64)
        seen.fresh(keys, np.array([d for _, d in batch], dtype=np.int16))
        for k, d in batch:
            least[k] = min(d, least.get(k, d))
        for run in seen.runs:  # runs stay sorted and distinct whatever order the merges took
            assert np.all(np.diff(run) > 0)
        assert len(seen) == len(least)
        if least:
            assert seen.least(np.array(sorted(least), np.int64)).tolist() == [least[k] for k in sorted(least)]
