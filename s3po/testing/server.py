"""An S3 server on 127.0.0.1: moto's standalone server in a subprocess.

``make demo`` runs against it, and so do the tests that must go over the wire
(connection pools, retries, the fault proxy): moto's in-process mock patches botocore
and never opens a socket. Needs moto's server extra (``pip install "moto[server]"``).
Not imported by ``import s3po``.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping, Optional

__all__ = ["HOST", "MotoServer", "ServerStartError", "free_port"]

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free a moment ago (the caller must cope with a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ServerStartError(RuntimeError):
    """The moto server did not come up; the message carries the tail of its log."""


class MotoServer:
    """moto's standalone S3 server, run as a subprocess on a free loopback port.

    ``env`` is the server's environment (default: this process's).

    Usage::

        with MotoServer() as server:
            client = boto3.client("s3", endpoint_url=server.url)
            ...
            server.reset()   # wipe every bucket between tests
    """

    def __init__(self, *, startup_timeout_s: float = 30.0, stop_timeout_s: float = 5.0,
                 env: Optional[Mapping[str, str]] = None):
        self.host = HOST
        self.env = dict(os.environ if env is None else env)
        self.port: Optional[int] = None
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._process: Optional["subprocess.Popen[bytes]"] = None
        self._log_path: Optional[Path] = None

    @property
    def url(self) -> str:
        self._running()
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def log_path(self) -> Optional[Path]:
        """The file the server's stdout and stderr go to (deleted by stop())."""
        return self._log_path

    def start(self) -> MotoServer:
        """Spawn the server and wait until it answers HTTP; return self."""
        if self._process is not None:
            raise RuntimeError("MotoServer is already started")
        # free_port() can lose a race with another process between probing and
        # moto binding; that shows up as an early exit, so try a few ports.
        for attempt in range(3):
            self._spawn()
            try:
                self._wait_until_answering()
                return self
            except ServerStartError:
                exited_early = self._running().poll() is not None
                self._discard_process()
                if not exited_early or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def reset(self) -> None:
        """Wipe all of moto's state (every bucket and object)."""
        status, body = self._request("POST", "/moto-api/reset", timeout_s=10.0)
        if status != 200:
            raise RuntimeError(f"moto reset answered {status}: {body[:200]!r}")

    def stop(self) -> None:
        """Terminate the server (kill it if it lingers), reap it and delete its log."""
        if self._process is None:
            return
        self._discard_process()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self._process.pid} url={self.url}" if self._process else "stopped"
        return f"<MotoServer {state}>"

    # -- internals --------------------------------------------------------

    def _spawn(self) -> None:
        self.port = free_port(self.host)
        fd, log_name = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        self._log_path = Path(log_name)
        # The log is a file, not a pipe: werkzeug logs every request, and a
        # pipe nobody reads would fill up and freeze the server mid-test.
        with os.fdopen(fd, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Optional[Exception] = None
        process = self._running()
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(
                    f"moto server exited with code {process.returncode} "
                    f"while starting on port {self.port}\n{self._log_tail()}"
                )
            try:
                self._request("GET", "/moto-api/config", timeout_s=2.0)
                return
            except OSError as err:  # not listening yet
                last_error = err
                time.sleep(0.05)
        raise ServerStartError(
            f"moto server did not answer on {self.host}:{self.port} within "
            f"{self.startup_timeout_s:.0f}s (last error: {last_error!r})\n{self._log_tail()}"
        )

    def _request(self, method: str, path: str, *, timeout_s: float) -> tuple[int, bytes]:
        # http.client rather than urllib: urllib would honour a developer's
        # HTTP_PROXY even for loopback.
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def _log_tail(self, lines: int = 30) -> str:
        if self._log_path is None:
            return "(no server log)"
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last lines of {self._log_path} ---\n{tail}"

    def _discard_process(self) -> None:
        process, self._process = self._running(), None
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
            process.wait()  # always reap, so no zombie outlives the session
        finally:
            if self._log_path is not None:
                self._log_path.unlink(missing_ok=True)
                self._log_path = None

    def _running(self) -> "subprocess.Popen[bytes]":
        if self._process is None:
            raise RuntimeError("MotoServer is not started")
        return self._process
