"""Grouping verified pairs into chain-free groups."""

from .unionfind import UnionFind, guarded_groups

__all__ = ["UnionFind", "guarded_groups"]
