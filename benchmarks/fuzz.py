"""Fuzz the decode and feature stage: mutated real files and random bytes, many of them.

    python3 benchmarks/fuzz.py [--n 20000] [--seed 1]

Seeds: the CC0 photos in tests/data as JPEG, PNG, WebP, GIF and TIFF. Each input is a seed with
1-8 mutations (bit flips, cuts, inserted bytes, zeroed runs, a truncation) or pure random
bytes. Every input must give features or a DecodeError with a reason; anything else, or a
crash of this process, is a finding. Prints how many inputs were tried and what they gave.
"""

from __future__ import annotations

import argparse
import collections
import io
import random
import time
from pathlib import Path

from PIL import Image

from neardup.errors import DecodeError
from neardup.features.decode import decode
from neardup.features.extract import digest_bytes, features_from_decoded

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def seeds() -> list[bytes]:
    out = []
    for p in sorted(DATA.glob("*.[jp][pn]g")):
        with Image.open(p) as im:
            im = im.convert("RGB").resize((160, 120))
        for fmt in ("JPEG", "PNG", "WEBP", "GIF", "TIFF"):
            buf = io.BytesIO()
            im.save(buf, fmt)
            out.append(buf.getvalue())
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.choice(["flip", "cut", "insert", "zero", "truncate"])
        at = rng.randrange(max(1, len(b)))
        if op == "flip" and b:
            b[at] ^= 1 << rng.randrange(8)
        elif op == "cut":
            del b[at: at + rng.randint(1, 2048)]
        elif op == "insert":
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == "zero" and b:
            b[at: at + 16] = bytes(min(16, len(b) - at))
        else:
            del b[at:]
    return bytes(b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    base = seeds()
    tally: collections.Counter[str] = collections.Counter()
    findings = []
    t = time.perf_counter()
    for i in range(a.n):
        data = mutate(rng, rng.choice(base)) if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 4096))
        try:
            f = features_from_decoded(decode(data, max_pixels=50_000_000), digest_bytes(data))
            tally["features"] += 1
            assert f.width > 0
        except DecodeError as e:
            tally[f"DecodeError {e.reason}"] += 1
        except Exception as e:  # a finding: neither features nor a clear DecodeError
            findings.append((i, f"{type(e).__name__}: {e}"))
    dt = time.perf_counter() - t
    print(f"{a.n:,} inputs in {dt:.0f} s (seed {a.seed}, {len(base)} seed files): {len(findings)} findings")
    for k, v in tally.most_common():
        print(f"  {k}: {v:,}")
    for i, msg in findings[:20]:
        print(f"  finding at input {i}: {msg}")


if __name__ == "__main__":
    main()
