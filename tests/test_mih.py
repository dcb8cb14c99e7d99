"""The candidate search returns exactly the brute-force pairs, hubs and all."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neardup.candidates import MultiIndex, brute_force_pairs
from neardup.candidates.mih import PairBatch


def _collect(index, codes, threads=1, engine="auto"):
    got = set()
    for pb in index.query(codes, np.arange(len(codes)), max_pairs=97, threads=threads, engine=engine):
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
    engine=st.sampled_from(["numpy", "compiled"]),
)
def test_search_equals_brute_force(seed, n, radius, hub, chunks, threads, engine):
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
    assert _collect(idx, codes, threads, engine) == brute_force_pairs(codes, radius)


@pytest.mark.parametrize("wide_ids", [False, True])
def test_compiled_loop_equals_numpy_loop_pair_for_pair(tmp_path, wide_ids):
    """The compiled loop (candidates/mih_loop.c) yields the NumPy loop's pairs and distances,
    from an index in memory and one mapped from disk, with 32- and 64-bit ids, and in batches
    so small that a hub's bucket is left and resumed many times."""
    rng = np.random.default_rng(7)
    codes = _codes(rng, 3_000, 3)
    codes[:400] = codes[0] ^ (np.uint64(1) << rng.integers(0, 64, 400).astype(np.uint64))  # a hub
    ids = np.arange(len(codes)) + (2**40 if wide_ids else 0)
    built = MultiIndex(codes, ids, radius=6)
    built.save(tmp_path / "index")
    for index in (built, MultiIndex.load(tmp_path / "index")):
        for max_pairs in (5, 262_144):
            runs = [sorted(zip(pb.a.tolist(), pb.b.tolist(), pb.distance.tolist()))
                    for engine in ("numpy", "compiled")
                    for pb in [_concat(index.query(codes[::3], ids[::3], max_pairs=max_pairs, engine=engine))]]
            assert runs[0] == runs[1] and len(runs[0]) > 1_000


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 2_000), chunks=st.integers(3, 16), radius=st.integers(0, 12),
       wide_ids=st.booleans(), hub=st.floats(0, 0.9))
def test_compiled_build_makes_numpys_tables(seed, n, chunks, radius, wide_ids, hub):
    """The counting sort of mih_loop.c builds the tables NumPy's stable sorts build: the same
    offsets, bucket map, codes and ids in the same order and widths (ids of 32 or 64 bits), for
    hubs of equal codes as well."""
    rng = np.random.default_rng(seed)
    codes = _codes(rng, n, 1) if n else np.zeros(0, np.uint64)
    k = int(n * hub)
    codes[:k] = codes[0] if k else codes[:k]  # many codes in one bucket: their order is kept
    ids = rng.permutation(n).astype(np.int64) + (2**40 if wide_ids else 0)
    made = [MultiIndex(codes, ids, radius=radius, n_chunks=chunks, engine=engine) for engine in ("numpy", "compiled")]
    assert len(made[0].chunks) == len(made[1].chunks) == chunks
    for numpy_chunk, compiled_chunk in zip(made[0].chunks, made[1].chunks):
        for ours, theirs in zip(numpy_chunk, compiled_chunk):
            if isinstance(ours, np.ndarray):
                assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
            else:
                assert ours == theirs


def test_an_unknown_engine_says_which_there_are():
    with pytest.raises(ValueError, match="'auto', 'numpy' or 'compiled'"):
        MultiIndex(np.zeros(3, np.uint64), np.arange(3), radius=4, engine="fast")  # type: ignore[arg-type]


def _concat(batches):
    parts = list(batches)
    return PairBatch(*(np.concatenate([getattr(pb, f) for pb in parts]) for f in ("a", "b", "distance")))


def test_duplicate_ids_from_several_variants_are_pairs_once_normalised():
    codes = np.array([5, 5, 7], dtype=np.uint64)
    ids = np.array([0, 0, 1])
    idx = MultiIndex(codes, ids, radius=1)
    got = set()
    for pb in idx.query(np.array([5], dtype=np.uint64), np.array([2])):
        got.update(zip(pb.a.tolist(), pb.b.tolist()))
    assert got == {(0, 2), (1, 2)}



def _codes(rng, n, near):
    base = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    # codes of nearby images: every other one a few bits from its neighbour
    flips = rng.integers(0, 64, size=(n, near))
    for k in range(near):
        base[1::2] = base[::2][: len(base[1::2])] ^ (np.uint64(1) << flips[1::2, k].astype(np.uint64))
    return base


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 120), radius=st.integers(0, 10),
       fresh_share=st.floats(0, 1), alt_share=st.floats(0, 0.5))
def test_incremental_candidates_complete_a_full_search(seed, n, radius, fresh_share, alt_share):
    # the pairs of an incremental search plus the pairs among the old rows (found before) are
    # exactly the pairs of a full search: frames against frames and windows, windows of old rows
    # against frames of new ones, alternative orientations included
    from neardup.candidates.search import candidate_batches
    from neardup.records import SearchColumns

    rng = np.random.default_rng(seed)
    p64, c64 = _codes(rng, n, 2), _codes(rng, n, 3)
    same = rng.random(n) < 0.5  # centre windows that are other images' frames, give or take a bit
    c64[same] = p64[rng.permutation(n)[: int(same.sum())]] ^ (np.uint64(1) << rng.integers(0, 64, int(same.sum())).astype(np.uint64))
    alt_rows = np.flatnonzero(rng.random(n) < alt_share).astype(np.int64)
    cols = SearchColumns(np.zeros((n, 16), np.uint8), np.ones(n, np.int32), p64, c64, alt_rows,
                         _codes(rng, len(alt_rows), 1) if len(alt_rows) else np.zeros(0, np.uint64),
                         _codes(rng, len(alt_rows), 1) if len(alt_rows) else np.zeros(0, np.uint64),
                         np.zeros(n, bool), np.zeros(n, bool))

    def pairs(fresh):
        out = set()
        for pb in candidate_batches(cols, fresh, radius=radius):
            out.update(zip(pb.a.tolist(), pb.b.tolist()))
        return out

    full = pairs(np.ones(n, bool))
    fresh = rng.random(n) < fresh_share
    old_pairs = {(a, b) for a, b in full if not fresh[a] and not fresh[b]}
    assert pairs(fresh) | old_pairs == full
    assert all(fresh[a] or fresh[b] for a, b in pairs(fresh))


def test_by_query_keeps_query_and_index_ids_apart():
    """Against a saved collection a query's id and an indexed id name different rows: pair 0
    with 0 is a real pair and the query's id comes first, whatever the order of the ids."""
    codes = np.array([0b1011, 1 << 40, 7], dtype=np.uint64)
    index = MultiIndex(codes, np.array([0, 1, 2]), radius=2)
    got = set()
    for pb in index.query(np.array([0b1010, 7], dtype=np.uint64), np.array([5, 0]), by_query=True):
        got.update(zip(pb.a.tolist(), pb.b.tolist(), pb.distance.tolist()))
    assert got == {(5, 0, 1), (0, 2, 0), (0, 0, 2)}
    plain = {(int(a), int(b)) for pb in index.query(np.array([7], dtype=np.uint64), np.array([2])) for a, b in
             zip(pb.a, pb.b)}
    assert (2, 2) not in plain  # a scan drops a row met by itself



@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_a_hub_block_is_handed_over_a_batch_at_a_time(engine):
    """Queries of one block that find millions of pairs (a hub of look-alike codes) are handed
    to the consumer as they are found, a few batches at a time, on every thread: not held until
    the block is done (1,200 equal codes: 7M pairs with each chunk's, ~120 MB if held)."""
    import tracemalloc

    codes = np.zeros(1_200, np.uint64)
    index = MultiIndex(codes, np.arange(len(codes)), radius=2)
    expect = sum(len(pb) for pb in index.query(codes, np.arange(len(codes)), max_pairs=20_000, engine=engine))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        pairs = 0
        for pb in index.query(codes, np.arange(len(codes)), max_pairs=20_000, threads=2, engine=engine):
            pairs += len(pb)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert pairs == expect > 1_200 * 1_199
    assert peak < 30 * 2**20, f"{peak / 2**20:.0f} MB held at once"


@pytest.mark.timeout(60)  # a thread left blocked on a full hand-over hangs the pool's shutdown: fail, not hang
def test_a_consumer_that_stops_early_leaves_no_query_thread_waiting():
    codes = np.zeros(3_000, np.uint64)
    index = MultiIndex(codes, np.arange(len(codes)), radius=2)
    batches = index.query(codes, np.arange(len(codes)), max_pairs=1_000, threads=2)
    assert len(next(batches)) > 0
    batches.close()  # returns only once every thread has stopped (the pool is shut down inside)
