"""A real S3 endpoint on 127.0.0.1: moto's standalone server in a subprocess.

Tests that must go over the wire (connection pools, retries, timeouts, the
fault proxy) talk to this instead of moto's in-process mock, which patches
botocore and never opens a socket.
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

HOST = "127.0.0.1"

# Everything botocore reads from the environment that could point a test at a
# developer's real account, profile or endpoint. They are removed, then the
# fake credentials below are set, so the credential chain stops at the
# environment and never reaches ~/.aws, a container or the instance metadata.
_DEVELOPER_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
)

FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Unsetting AWS_CONFIG_FILE would fall back to ~/.aws/config, so point
    # both files at something empty instead.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def isolated_aws_environment(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """Return a copy of `environ` with fake AWS credentials and no developer AWS config.

    Loopback is also added to NO_PROXY: botocore (and urllib) honour
    HTTP_PROXY, and a developer's proxy must not sit between a test and
    127.0.0.1.
    """
    env = {k: v for k, v in environ.items() if k not in _DEVELOPER_AWS_VARIABLES}
    env.update(FAKE_AWS_ENVIRONMENT)
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in env.get(name, "").split(",") if h]
        env[name] = ",".join(hosts + [h for h in (HOST, "localhost") if h not in hosts])
    return env


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free a moment ago (the caller must cope with a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ServerStartError(RuntimeError):
    """The moto server did not come up; the message carries the tail of its log."""


class MotoServer:
    """moto's standalone S3 server, run as a subprocess on a free loopback port.

    Usage::

        with MotoServer() as server:
            client = boto3.client("s3", endpoint_url=server.url)
            ...
            server.reset()   # wipe every bucket between tests
    """

    def __init__(self, *, startup_timeout_s: float = 30.0, stop_timeout_s: float = 5.0):
        self.host = HOST
        self.port: int | None = None
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen | None = None
        self._log_path: Path | None = None

    @property
    def url(self) -> str:
        self._require_running()
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        self._require_running()
        return self._process.pid

    @property
    def log_path(self) -> Path | None:
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
                exited_early = self._process.poll() is not None
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

    def __exit__(self, *exc_info) -> None:
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
                env=isolated_aws_environment(os.environ),
            )

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"moto server exited with code {self._process.returncode} "
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
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last lines of {self._log_path} ---\n{tail}"

    def _discard_process(self) -> None:
        process, self._process = self._process, None
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

    def _require_running(self) -> None:
        if self._process is None:
            raise RuntimeError("MotoServer is not started")
