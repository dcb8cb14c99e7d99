"""Candidate pairs: exact Hamming-radius search over hash codes."""

from .mih import MultiIndex, PairBatch, brute_force_pairs, choose_chunks

__all__ = ["MultiIndex", "PairBatch", "brute_force_pairs", "choose_chunks"]
