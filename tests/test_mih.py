"""The candidate search returns exactly the brute-force pairs, hubs and all."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neardup.candidates import MultiIndex, brute_force_pairs


def _collect(index, codes, threads=1):
    got = set()
    for pb in index.query(codes, np.arange(len(codes)), max_pairs=97, threads=threads):
        assert (pb.a < pb.b).all()
        got.update(zip(pb.a.tolist(), pb.b.tolist()))
    return got


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 300),
    radius=st.integers(0, 12),
    hub=st.floats(0, 0.5),
    chunks=st.one_of(st.none(), st.integers(1, 8)),
    threads=st.integers(1, 3),
)
def test_search_equals_brute_force(seed, n, radius, hub, chunks, threads):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(np.uint64)
    k = int(n * hub)
    if k:  # a hub of near-identical codes, as look-alike images produce
        base = codes[0]
        flips = rng.integers(0, 64, size=k)
        codes[:k] = base ^ (np.uint64(1) << flips.astype(np.uint64))
    if chunks is not None and 64 // chunks > 26:
        chunks = None
    idx = MultiIndex(codes, np.arange(n), radius=radius, n_chunks=chunks)
    assert _collect(idx, codes, threads) == brute_force_pairs(codes, radius)


def test_duplicate_ids_from_several_variants_are_pairs_once_normalised():
    codes = np.array([5, 5, 7], dtype=np.uint64)
    ids = np.array([0, 0, 1])
    idx = MultiIndex(codes, ids, radius=1)
    got = set()
    for pb in idx.query(np.array([5], dtype=np.uint64), np.array([2])):
        got.update(zip(pb.a.tolist(), pb.b.tolist()))
    assert got == {(0, 2), (1, 2)}

