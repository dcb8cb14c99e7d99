"""Real storage emulators on loopback for the tests: Azurite (Azure Blob) and a moto server (S3).

Each runs as a child process on a free port; start() returns when the process says it is
listening (read from its output, no sleeping).  When an emulator is not installed the tests
that need it skip, unless ``NEARDUP_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where a missing
emulator is a failure: CI cannot go green without really running them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

#: Azurite's documented development account (public, not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _missing(what: str) -> None:
    if os.environ.get("NEARDUP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required here (NEARDUP_REQUIRE_SERVICES=1) but not installed")
    pytest.skip(f"{what} is not installed (run .ci/run, which installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Child:
    """A server process whose readiness is a line it prints."""

    ready_text = ""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.cmd, self.env = cmd, env
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=self.env)
        ready = threading.Event()
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.append(line)
                if self.ready_text in line:
                    ready.set()
            ready.set()  # exited: let start() see it

        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()
        if not ready.wait(timeout) or proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"{self.cmd[0]} did not start:\n{''.join(self.log[-20:])}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.pump.join()  # the pipe is at EOF once the process is gone
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        self.proc = None


def azurite_binary() -> str | None:
    env = os.environ.get("NEARDUP_AZURITE")
    if env:
        return env
    found = shutil.which("azurite-blob")
    if found:
        return found
    local = Path.home() / ".cache" / "neardup-ci" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else None


class Azurite(_Child):
    ready_text = "successfully listens"

    def __init__(self, location: Path) -> None:
        binary = azurite_binary()
        if binary is None:
            _missing("azurite (npm install azurite)")
        self.port = free_port()
        super().__init__([str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location",
                          str(location), "--disableTelemetry", "--skipApiVersionCheck", "--loose"])

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};")


class MotoServer(_Child):
    ready_text = "Running on"

    def __init__(self) -> None:
        try:
            import moto.server  # noqa: F401
        except ImportError:
            _missing("moto[server]")
        self.port = free_port()
        super().__init__([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def dask_command() -> str | None:
    """The ``dask`` command beside this interpreter first: a venv's tools need no activated PATH."""
    return shutil.which("dask", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


class DaskScheduler(_Child):
    ready_text = "Scheduler at:"

    def __init__(self) -> None:
        dask = dask_command()
        if dask is None:
            _missing("dask[distributed]")
        self.port = free_port()
        super().__init__([dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                          "--dashboard-address", ":0", "--no-show"])

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


class DaskWorker(_Child):
    """One worker process, no nanny: killing it kills it (the scheduler must cope)."""

    ready_text = "Registered to:"

    def __init__(self, address: str) -> None:
        super().__init__([dask_command() or "dask", "worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                          "--no-dashboard"])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.pump.join()
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.proc = None
