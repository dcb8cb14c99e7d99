"""Peer runners, executed inside the peers' virtual environment (see run.py).

    python tools.py TOOL FOLDER OUT.json

Each runner lists the images under FOLDER, finds duplicates its own way, and writes
``{"groups": [[path, ...], ...]}``.  Thresholds are each tool's documented default or the one
its README shows for near-duplicates; they are stated in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _files(folder: str) -> list[str]:
    out = []
    for root, _, names in os.walk(folder):
        out += [os.path.join(root, n) for n in names if os.path.splitext(n)[1].lower() in EXTS]
    return sorted(out)


def _components(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _hamming_pairs(codes, radius: int) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    import numpy as np

    bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1)
    pairs = []
    for i in range(len(bits)):
        d = (bits[i + 1 :] != bits[i]).sum(axis=1)
        pairs += [(i, i + 1 + int(j)) for j in np.flatnonzero(d <= radius)]
    return pairs


def _hash_groups(folder: str, code_of, radius: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Hash every file with ``code_of(path) -> packed bits``, group pairs within ``radius``."""
    files = _files(folder)
    codes = [code_of(f) for f in files]
    return [[files[i] for i in g] for g in _components(len(files), _hamming_pairs(codes, radius))]


def imagehash_phash(folder: str) -> list[list[str]]:
    """pHash (8x8) with Image.draft for a reduced JPEG decode, pairs at distance <= 4."""
    import imagehash
    import numpy as np
    from PIL import Image

    def code(f: str):  # type: ignore[no-untyped-def]
        with Image.open(f) as im:
            im.draft("L", (64, 64))
            return np.packbits(imagehash.phash(im).hash.reshape(-1))

    return _hash_groups(folder, code, 4)


def pdqhash_pdq(folder: str) -> list[list[str]]:
    """PDQ (256 bits), pairs at distance <= 31 (the PDQ reference threshold)."""
    import numpy as np
    import pdqhash
    from PIL import Image

    def code(f: str):  # type: ignore[no-untyped-def]
        with Image.open(f) as im:
            im.draft("RGB", (512, 512))
            vec, _quality = pdqhash.compute(np.asarray(im.convert("RGB")))
        return np.packbits(vec.astype(np.uint8))

    return _hash_groups(folder, code, 31)


def czkawka(folder: str) -> list[list[str]]:
    """czkawka's ImageSimilarity at similarity 15 (the README's example)."""
    from czkawka import ImageSimilarity

    finder = ImageSimilarity()
    finder.set_directories([Path(folder)])
    finder.set_similarity(15)
    return [[str(p) for p in g] for g in finder.find_similar()]


def _imagededup(folder: str, method: str) -> list[list[str]]:
    from imagededup import methods

    hasher = getattr(methods, method)(verbose=False)
    dups = hasher.find_duplicates(image_dir=folder, max_distance_threshold=10, scores=False, recursive=True)
    files = sorted(dups)
    index = {f: i for i, f in enumerate(files)}
    pairs = [(index[a], index[b]) for a, bs in dups.items() for b in bs if b in index]
    return [[os.path.join(folder, files[i]) for i in g] for g in _components(len(files), pairs)]


def imagededup_phash(folder: str) -> list[list[str]]:
    """imagededup PHash, its default max distance 10, groups by union of its pairs."""
    return _imagededup(folder, "PHash")


def imagededup_whash(folder: str) -> list[list[str]]:
    return _imagededup(folder, "WHash")


def fastdup_default(folder: str) -> list[list[str]]:
    """fastdup (offline, SENTRY_OPT_OUT=1) with its defaults: connected components."""
    import tempfile

    import fastdup

    with tempfile.TemporaryDirectory() as work:
        fd = fastdup.create(work_dir=work, input_dir=folder)
        fd.run(verbose=False, overwrite=True)
        cc = fd.connected_components_grouped()
        groups = []
        for files in cc["files"]:
            if len(files) > 1:
                groups.append([f if os.path.isabs(f) else os.path.join(folder, f) for f in files])
        return groups


TOOLS = {
    "imagehash-phash": imagehash_phash,
    "pdqhash": pdqhash_pdq,
    "czkawka": czkawka,
    "imagededup-phash": imagededup_phash,
    "imagededup-whash": imagededup_whash,
    "fastdup": fastdup_default,
}

if __name__ == "__main__":
    tool, folder, out = sys.argv[1:4]
    groups = TOOLS[tool](folder)
    Path(out).write_text(json.dumps({"groups": groups}))
