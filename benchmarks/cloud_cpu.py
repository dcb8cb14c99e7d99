"""Where the time of a scan from Azurite goes: CPU of neardup's process tree, of the emulator,
and idle core-seconds, against the same files on local disk.

    python3 benchmarks/cloud_cpu.py /tmp/devset/images

Each scan is a fresh ``neardup scan --no-cache`` process; alternates local and ``az://`` twice.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cloud import _cpu_s as _cpu  # noqa: E402
from tests.services import Azurite  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    a = ap.parse_args()
    files = sorted(p for p in a.folder.iterdir() if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        az = Azurite(Path(tmp) / "az")
        az.start()
        try:
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = az.connection_string
            from azure.storage.blob import BlobServiceClient

            cc = BlobServiceClient.from_connection_string(az.connection_string).get_container_client("bench")
            cc.create_container()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda p: cc.upload_blob(f"img/{p.name}", p.read_bytes()), files))
            assert az.proc is not None
            for url in [str(a.folder), "az://bench/img"] * 2:
                c0, r0 = _cpu(az.proc.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run(["neardup", "scan", url, "-o", str(Path(tmp) / "r.json"), "--no-cache", "-q"], check=False)
                dt = time.perf_counter() - t
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                tree = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                emu = _cpu(az.proc.pid) - c0
                cores = os.cpu_count() or 1
                print(f"{url}: wall {dt:.2f} s, neardup CPU {tree:.2f} s ({tree / len(files) * 1000:.2f} ms/image), "
                      f"emulator CPU {emu:.2f} s, idle {cores * dt - tree - emu:.2f} core-s")
        finally:
            az.stop()


if __name__ == "__main__":
    main()
