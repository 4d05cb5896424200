"""The service in a subprocess: start it, wait until ready, stop or kill it.

Used where the real server must run as its own process: the SIGKILL durability
tests, the metrics of several workers and the load benchmark
(``benchmarks/bench_service.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from primetime.service.metrics import MULTIPROC_DIR_ENV, prepare_multiprocess_dir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``uvicorn primetime.service.app:app_from_env --factory`` with ``workers`` worker
    processes, configured through the ``PRIMETIME_*`` variables in ``env``; its output goes
    to ``log``.

    With several workers, the metrics directory is prepared as ``primetime serve`` does
    (:func:`~primetime.service.metrics.prepare_multiprocess_dir`): ``metrics_dir`` while
    it runs, removed when it stops if it was made for it. The server runs in a process
    group of its own, so that ``kill`` reaches every worker.
    """

    env: dict[str, str]
    cwd: Path
    log: Path
    port: int = field(default_factory=free_port)
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None
    metrics_dir: Path | None = field(default=None, init=False)
    _made_dir: Path | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300.0) -> float:
        """Start the server; return the seconds until ``/ready`` answered 200.

        Raises:
            RuntimeError: if it exits or is not ready within ``timeout`` (with its log tail).
        """
        env = dict(self.env)
        self._made_dir = prepare_multiprocess_dir(self.workers, env)
        chosen = env.get(MULTIPROC_DIR_ENV)
        self.metrics_dir = Path(chosen) if chosen else None
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "primetime.service.app:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        t0 = time.perf_counter()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL to the server and its workers: no shutdown handler, no flush."""
        if self.proc is not None:
            # The whole group, even if uvicorn's parent process is gone already.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._remove_metrics_dir()

    def stop(self) -> None:
        """SIGTERM (graceful: uvicorn stops its workers), then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._remove_metrics_dir()

    def _remove_metrics_dir(self) -> None:
        if self._made_dir is not None:
            shutil.rmtree(self._made_dir, ignore_errors=True)
            self._made_dir = None

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines of its log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
