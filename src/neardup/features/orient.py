"""A canonical orientation from low DCT coefficients, so one query covers all 8 variants.

Flipping left-right negates coefficients of odd horizontal frequency, flipping top-bottom
those of odd vertical frequency, and a transpose swaps the axes.  So the signs of
``sh`` (first horizontal gradient) and ``sv`` (first vertical gradient), and which of the two
is larger, pick one of the 8 dihedral variants as canonical.  Where a decision is close, the
alternatives are indexed too: exactness over all 8 orientations is kept, at the price of a few
extra index entries for images that are nearly symmetric.
"""

from __future__ import annotations

import numpy as np

__all__ = ["orient_layouts", "canonical_variants", "canonical_variant", "compose", "INVERSE", "AMBIGUITY"]

#: A decision whose margin is below this share of the AC energy is treated as ambiguous.
AMBIGUITY = 0.12

# Variant v = 4 * flip + r: flip left-right first, then rotate 90 degrees ccw r times
# (the order used by hashes.variant_hashes).  Express each as (transpose, flipLR, flipTB)
# acting on the coefficient signs so that decisions map to variant indices.


def _variant_table() -> dict[tuple[bool, bool, bool], int]:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 4))
    sv = np.where(np.arange(4) % 2 == 1, -1.0, 1.0)
    table: dict[tuple[bool, bool, bool], int] = {}
    for flip in (False, True):
        m0 = base * sv[None, :] if flip else base
        for r in range(4):
            m = m0
            for _ in range(r):
                m = (m * sv[None, :]).T
            for t in (False, True):
                for fl in (False, True):
                    for ft in (False, True):
                        x = base.T if t else base
                        x = x * sv[None, :] if fl else x
                        x = x * sv[:, None] if ft else x
                        if np.allclose(x, m):
                            table[(t, fl, ft)] = 4 * int(flip) + r
    return table


_TABLE = _variant_table()


# _TABLE as an array indexed [transpose, flip_lr, flip_tb]
_TAB = np.zeros((2, 2, 2), dtype=np.int64)
for (_t, _fl, _ft), _v in _TABLE.items():
    _TAB[int(_t), int(_fl), int(_ft)] = _v


def canonical_variants(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a stack of low-frequency DCT blocks (N, k, k), k >= 4: ``(canon, alt_mask)`` as uint8
    columns.  ``canon`` is the dihedral variant that brings each image to canonical orientation;
    bit ``v`` of ``alt_mask`` is set for every other variant a slightly different copy might
    choose (its deciding coefficient within :data:`AMBIGUITY` of zero), which the index must
    then hold as well."""
    c = np.asarray(coef, dtype=np.float64)
    n = len(c)
    e = np.sqrt((c**2).sum(axis=(1, 2)) - c[:, 0, 0] ** 2) + 1e-9
    sh, sv = _gradients(c)
    t_choice = np.abs(sv) > np.abs(sh)
    t_amb = np.abs(np.abs(sh) - np.abs(sv)) / e < AMBIGUITY
    mask = np.zeros(n, dtype=np.int64)
    for t in (False, True):
        allowed_t = t_amb | (t_choice == t)
        h, v = (sv, sh) if t else (sh, sv)
        h_amb, v_amb = np.abs(h) / e < AMBIGUITY, np.abs(v) / e < AMBIGUITY
        for fl in (False, True):
            allowed_fl = h_amb | ((h < 0) == fl)
            for ft in (False, True):
                allowed = allowed_t & allowed_fl & (v_amb | ((v < 0) == ft))
                mask |= np.where(allowed, 1 << int(_TAB[int(t), int(fl), int(ft)]), 0)
    canon = _canon(sh, sv)
    mask &= ~(1 << canon)
    return canon.astype(np.uint8), mask.astype(np.uint8)


def _gradients(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return c[:, 0, 1] + 0.5 * c[:, 0, 3] + 0.5 * c[:, 2, 1], c[:, 1, 0] + 0.5 * c[:, 3, 0] + 0.5 * c[:, 1, 2]


def _canon(sh: np.ndarray, sv: np.ndarray) -> np.ndarray:
    t_choice = np.abs(sv) > np.abs(sh)
    h = np.where(t_choice, sv, sh)
    v = np.where(t_choice, sh, sv)
    return _TAB[t_choice.astype(np.int64), (h < 0).astype(np.int64), (v < 0).astype(np.int64)]


def canonical_variant(coef: np.ndarray) -> np.ndarray:
    """:func:`canonical_variants`' ``canon`` alone, without the ambiguity mask (crop windows
    and tilted frames are queried in one orientation each)."""
    corner = np.asarray(coef)[:, :4, :4]  # the gradients' six coefficients lie here: only they are widened
    return _canon(*_gradients(corner.astype(np.float64))).astype(np.uint8)


def orient_layouts(layouts: np.ndarray, variants: np.ndarray) -> np.ndarray:
    """(P, s, s) layouts each turned to its dihedral variant (flip left-right first, then
    quarter turns ccw: the order of the hash variants), one stacked turn per variant present."""
    variants = np.asarray(variants, dtype=np.int64)
    out = np.empty_like(layouts)
    for v in np.unique(variants).tolist():
        rows = np.flatnonzero(variants == v)
        x = layouts[rows][:, :, ::-1] if v >= 4 else layouts[rows]
        out[rows] = np.rot90(x, v % 4, axes=(1, 2))
    return out


def _turn(x: np.ndarray, v: int) -> np.ndarray:
    return np.rot90(x[:, ::-1] if v >= 4 else x, v % 4)


def _compose_table() -> np.ndarray:
    probe = np.arange(16.0).reshape(4, 4)
    turned = [_turn(probe, v) for v in range(8)]
    table = np.zeros((8, 8), np.int64)
    for first in range(8):
        for second in range(8):
            both = _turn(turned[first], second)
            table[first, second] = next(v for v in range(8) if np.array_equal(turned[v], both))
    return table


#: COMPOSE[first, second]: the variant that turns as ``first`` then ``second`` do
COMPOSE = _compose_table()
#: the variant that undoes each variant
INVERSE = np.array([int(np.flatnonzero(COMPOSE[v] == 0)[0]) for v in range(8)])


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The dihedral variant that turns as ``first`` and then ``second`` do (element-wise)."""
    return COMPOSE[np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)]
