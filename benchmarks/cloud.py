"""Cloud sources against the emulators: scan speed against local disk, SDK against fsspec reads,
and the memory of listing many blobs.

    python3 benchmarks/cloud.py /tmp/devset/images [--repeats 3] [--list 100000]

Starts Azurite and a moto server on loopback (as the tests do), uploads the folder to both, then:

1. ``neardup scan`` (fast mode, cold cache, in-process) of the local folder, of ``az://`` and of
   ``s3://``, alternating, ``--repeats`` times; medians and the ratio to local disk.  With
   ``--pin``, the emulators (every thread) run on CPU 1 and the scan (one worker) on CPU 0, as a
   storage service runs on machines of its own: the ratio is then that of the source, not of
   two programs sharing two cores.
2. CPU a blob read and a blob listed (one thread), then reading every blob once, 8 threads, through the native SDKs (what neardup uses) and through
   fsspec (adlfs ``cat``, s3fs ``cat``, which batch with asyncio); images/s.
3. Listing ``--list`` small blobs in a fresh process: peak RSS of the process above its RSS
   after imports, neardup's paged listing against adlfs ``find`` (one dict of all blobs).
Needs ``pip install -e '.[test,bench]'`` and Azurite (see README).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services import Azurite, MotoServer  # noqa: E402

import neardup  # noqa: E402

LIST_CODE = r"""
import os, sys, time
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
how, url = sys.argv[1], sys.argv[2]
if how == 'neardup':
    from neardup.sources import cloud, open_source
    cloud.AZURE_PAGE = int(sys.argv[3])
    base = hwm(); t = time.perf_counter()
    n = sum(1 for _ in open_source(url).entries())
else:
    import adlfs
    fs = adlfs.AzureBlobFileSystem(connection_string=os.environ['AZURE_STORAGE_CONNECTION_STRING'])
    base = hwm(); t = time.perf_counter()
    n = len(fs.find(url.split('://', 1)[1], detail=True))
print(n, f'{time.perf_counter() - t:.1f}', f'{hwm() - base:.1f}', f'{hwm():.1f}')
"""


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used: what the emulator takes from the cores."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scan(url: str, n: int, server_pid: int | None, workers: int = 0) -> tuple[float, float]:
    """(images/s, the emulator's share of the machine's CPU time during the scan)."""
    with tempfile.TemporaryDirectory() as cache:
        c0 = _cpu_s(server_pid)
        t = time.perf_counter()
        r = neardup.scan([url], cache=cache, workers=workers)
        dt = time.perf_counter() - t
        assert r.stats["read"] == n - sum(1 for f in r.failures if f.stage == "scan"), r.stats
        return n / dt, (_cpu_s(server_pid) - c0) / (dt * (os.cpu_count() or 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--list", type=int, default=100_000, help="blobs for the listing-memory test (0: skip)")
    ap.add_argument("--page", type=int, default=0, help="Azure listing page size (default: neardup's)")
    ap.add_argument("--skip-scans", action="store_true", help="only the reads and the listing")
    ap.add_argument("--pin", action="store_true",
                    help="emulators on CPU 1, the scan (one worker) on CPU 0 (taskset; needs 2 CPUs)")
    a = ap.parse_args()
    files = sorted(p for p in a.folder.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        az, s3 = Azurite(Path(tmp) / "azurite"), MotoServer()
        az.start()
        s3.start()
        try:
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = az.connection_string
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                              AWS_ENDPOINT_URL=s3.endpoint)
            import boto3
            from azure.storage.blob import BlobServiceClient

            cc = BlobServiceClient.from_connection_string(az.connection_string).get_container_client("bench")
            cc.create_container()
            s3c = boto3.client("s3")
            s3c.create_bucket(Bucket="bench")
            names = [str(p.relative_to(a.folder)) for p in files]
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: cc.upload_blob(f"img/{names[i]}", files[i].read_bytes()), range(len(files))))
                list(pool.map(lambda i: s3c.put_object(Bucket="bench", Key=f"img/{names[i]}",
                                                       Body=files[i].read_bytes()), range(len(files))))
            print(f"uploaded {len(files):,} files to both emulators in {time.perf_counter() - t:.1f} s")

            # 1. scan speed, alternating
            rates: dict[str, list[float]] = {"local": [], "az": [], "s3": []}
            share: dict[str, list[float]] = {"local": [], "az": [], "s3": []}
            urls = {"local": str(a.folder), "az": "az://bench/img", "s3": "s3://bench/img"}
            pids = {"local": None, "az": az.proc.pid if az.proc else None, "s3": s3.proc.pid if s3.proc else None}
            if a.pin:
                for pid in (pids["az"], pids["s3"]):
                    subprocess.run(["taskset", "-a", "-cp", "1", str(pid)], check=True, capture_output=True)
                os.sched_setaffinity(0, {0})
                print("pinned: emulators on CPU 1, the scan on CPU 0 with one worker")
            for _ in range(0 if a.skip_scans else a.repeats):
                for k in rates:
                    r, c = _scan(urls[k], len(files), pids[k], workers=1 if a.pin else 0)
                    rates[k].append(r)
                    share[k].append(c)
            med = {k: statistics.median(v) for k, v in rates.items() if v}
            for k, v in rates.items() if not a.skip_scans else ():
                print(f"scan {urls[k]}: median {med[k]:,.0f} images/s ({', '.join(f'{x:,.0f}' for x in v)})"
                      + ("" if k == "local" else f" = {med[k] / med['local']:.0%} of local disk; the emulator "
                         f"itself used {statistics.median(share[k]):.0%} of the machine's CPU meanwhile"))
            if a.pin:
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

            # 2. read paths: native SDK (threads) against fsspec (asyncio batches)
            keys = [f"img/{n}" for n in names]

            def timed(label: str, fn) -> None:
                t = time.perf_counter()
                total = fn()
                dt = time.perf_counter() - t
                print(f"read all via {label}: {len(keys) / dt:,.0f} blobs/s, {total / dt / 1e6:,.1f} MB/s")

            from neardup.sources import read_bytes

            # CPU a blob, one thread, 400 blobs: what each route costs the cores that decode
            routes = {"neardup read_bytes (az://)": lambda k: read_bytes(f"az://bench/{k}"),
                      "azure-storage-blob download_blob": lambda k: cc.download_blob(k).readall(),
                      "neardup read_bytes (s3://)": lambda k: read_bytes(f"s3://bench/{k}"),
                      "boto3 get_object": lambda k: s3c.get_object(Bucket="bench", Key=k)["Body"].read()}
            for label, fn in routes.items():
                c = time.process_time()
                for k in keys[:400]:
                    fn(k)
                print(f"CPU a blob via {label}, one thread: {(time.process_time() - c) / 400 * 1000:.2f} ms")

            # CPU a blob listed, one thread: neardup's REST listing against the SDK's model objects
            from neardup.sources import open_source

            lists = {"neardup listing (az://, REST + ElementTree)": lambda: sum(
                         1 for _ in open_source("az://bench/img").entries()),
                     "azure-storage-blob list_blobs": lambda: sum(1 for _ in cc.list_blobs(name_starts_with="img/"))}
            for label, fn in lists.items():
                c = time.process_time()
                n = fn()
                print(f"CPU a blob listed via {label}: {(time.process_time() - c) / n * 1e6:.0f} µs ({n:,} blobs)")

            with ThreadPoolExecutor(8) as pool:
                timed("neardup read_bytes (az://), 8 threads",
                      lambda: sum(pool.map(lambda k: len(read_bytes(f"az://bench/{k}")), keys)))
                timed("neardup read_bytes (s3://), 8 threads",
                      lambda: sum(pool.map(lambda k: len(read_bytes(f"s3://bench/{k}")), keys)))
                timed("azure-storage-blob, 8 threads",
                      lambda: sum(pool.map(lambda k: len(cc.download_blob(k).readall()), keys)))
                timed("boto3, 8 threads",
                      lambda: sum(pool.map(lambda k: len(s3c.get_object(Bucket="bench", Key=k)["Body"].read()), keys)))
            try:
                import adlfs
                import s3fs

                afs = adlfs.AzureBlobFileSystem(connection_string=az.connection_string)
                timed("adlfs cat (fsspec)", lambda: sum(len(v) for v in afs.cat([f"bench/{k}" for k in keys]).values()))
                sfs = s3fs.S3FileSystem()
                timed("s3fs cat (fsspec)", lambda: sum(len(v) for v in sfs.cat([f"bench/{k}" for k in keys]).values()))
            except ImportError:
                print("fsspec comparison skipped: pip install -e '.[bench]'")

            # 3. listing memory
            if a.list:
                lc = BlobServiceClient.from_connection_string(az.connection_string).get_container_client("many")
                lc.create_container()
                t = time.perf_counter()
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda i: lc.upload_blob(f"p/{i // 1000:03d}/{i:07d}.jpg", b"x"), range(a.list)))
                print(f"uploaded {a.list:,} blobs in {time.perf_counter() - t:.0f} s")
                from neardup.sources import cloud

                page = str(a.page or cloud.AZURE_PAGE)
                for how in ("neardup", "adlfs"):
                    out = subprocess.run([sys.executable, "-c", LIST_CODE, how, "az://many/p", page], capture_output=True,
                                         text=True, check=True).stdout.split()
                    print(f"list {out[0]} blobs via {how}{f' (pages of {page})' if how == 'neardup' else ''}: "
                          f"{out[1]} s, peak RSS +{out[2]} MB above imports "
                          f"({out[3]} MB in all)")
        finally:
            az.stop()
            s3.stop()


if __name__ == "__main__":
    main()
