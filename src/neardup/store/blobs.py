"""How NumPy columns are stored as SQLite blobs, and read back a column at a time."""

from __future__ import annotations

import numpy as np

from ..features.extract import FEATURE_VERSION, SEARCH_CODES, SIG_SIDE, FeatureBatch
from ..features.quality import QUALITY_FIELDS

__all__ = ["BLOB_LAYOUT", "decode_column", "encode_blobs", "feature_rows"]

#: how each feature blob decodes: dtype and shape of one row (scalars are stored as numbers)
BLOB_LAYOUT: dict[str, tuple[str, tuple[int, ...]]] = {
    "p64": ("<u8", (8,)), "c64": ("<u8", (8,)), "d256": ("<u8", (8, 4)), "colour": ("u1", (48,)),
    "sig": ("u1", (SIG_SIDE, SIG_SIDE)), "windows": ("<u8", (SEARCH_CODES,)), "quality": ("<f8", (len(QUALITY_FIELDS),)),
}


def decode_column(field: str, values: list[object]) -> np.ndarray:
    """One feature column as a NumPy array: blobs joined and decoded at once, numbers as they are."""
    if field not in BLOB_LAYOUT:
        return np.asarray(values)
    dtype, shape = BLOB_LAYOUT[field]
    return np.frombuffer(b"".join(values), dtype).reshape(len(values), *shape)  # type: ignore[arg-type]


def encode_blobs(a: np.ndarray, dtype: str) -> list[bytes]:
    """Row ``i`` of ``a`` as the bytes of one cache blob, for every row at once."""
    flat = np.ascontiguousarray(a, dtype=dtype).reshape(len(a), -1)
    raw = flat.tobytes()
    k = flat.shape[1] * flat.itemsize
    return [raw[i : i + k] for i in range(0, len(raw), k)]


def feature_rows(f: FeatureBatch) -> list[tuple[object, ...]]:
    """The rows of the features table for a batch, built column by column.  The columns the
    candidate search loads come first and the big blobs last, so that loading them reads each
    row's first few hundred bytes, never its overflow pages."""
    n = len(f)
    return list(zip(
        encode_blobs(f.digest, "u1"), [FEATURE_VERSION] * n, f.canon.tolist(), f.alt_mask.tolist(), f.energy.tolist(),
        f.content_side.tolist(), encode_blobs(f.p64, "<u8"), encode_blobs(f.c64, "<u8"), encode_blobs(f.quality, "<f8"),
        f.width.tolist(), f.height.tolist(), f.format, f.whash.astype(np.uint64).view(np.int64).tolist(),
        encode_blobs(f.windows, "<u8"), encode_blobs(f.colour, "u1"), encode_blobs(f.d256, "<u8"), encode_blobs(f.sig, "u1"),
    ))
