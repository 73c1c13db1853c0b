"""The S3 server and the delaying proxy in front of it, as child processes.

Both run as processes of their own so that their CPU time can be read from /proc and
reported next to the clients': a benchmark whose server is saturated measures the server.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import peers

from s3po.testing.server import free_port

BENCH = Path(__file__).resolve().parent
START_TIMEOUT_S = 30
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid):
    """User + system CPU seconds of a live process (all its threads), or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name may hold spaces; the fields after its ')' are fixed.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_s():
    """(busy, stolen) CPU seconds of all cores since boot, or (None, None) off Linux.

    Busy counts user, system, irq and softirq time (the loopback's TCP work partly lands in
    softirq, charged to no process); stolen is time the hypervisor gave to someone else.
    """
    try:
        with open("/proc/stat") as stat:
            fields = [int(field) for field in stat.readline().split()[1:9]]
    except OSError:
        return None, None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def _wait_for_port(process, port, log_path):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise peers.Unavailable(f"exited with {process.returncode}: {_tail(log_path)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise peers.Unavailable(f"not listening after {START_TIMEOUT_S} s: {_tail(log_path)}")


def _tail(path):
    with contextlib.suppress(OSError):
        lines = Path(path).read_text(errors="replace").strip().splitlines()
        if lines:
            return lines[-1]
    return "no output"


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    """A local S3 server on 127.0.0.1, with its data in a temporary directory."""

    # kind: (how many cores it can keep busy, access key, secret key)
    KINDS = {
        "rclone": ("all", "benchaccess", "benchsecret"),
        "s3rver": (1, "S3RVER", "S3RVER"),     # s3rver only accepts its own fixed keys
        "moto": (1, "benchaccess", "benchsecret"),
    }

    def __init__(self, kind):
        self.kind = kind
        cores, self.access_key, self.secret_key = self.KINDS[kind]
        self.cores = os.cpu_count() if cores == "all" else cores
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.mkdtemp(prefix=f"s3po-bench-{kind}-")
        self._log = Path(self._dir) / "server.log"
        data = Path(self._dir) / "data"
        data.mkdir()
        command, self.version = self._command(data)
        with open(self._log, "w") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(self._process, self.port, self._log)
        except peers.Unavailable:
            self.stop()
            raise

    def _command(self, data):
        address = f"127.0.0.1:{self.port}"
        if self.kind == "rclone":
            binary = peers.rclone()
            version = subprocess.run([binary, "version"], capture_output=True, text=True,
                                     timeout=30).stdout.split("\n", 1)[0]
            return [binary, "serve", "s3", "--config", os.devnull, "--log-level", "ERROR",
                    "--auth-key", f"{self.access_key},{self.secret_key}",
                    "--addr", address, str(data)], version
        if self.kind == "s3rver":
            script = peers.s3rver()
            package = json.loads((script.parent.parent / "package.json").read_text())
            return [shutil.which("node"), str(script), "--directory", str(data),
                    "--address", "127.0.0.1", "--port", str(self.port), "--silent",
                    "--no-vhost-buckets"], f"s3rver {package['version']}"
        from importlib.metadata import version
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], \
            f"moto {version('moto')}"

    @property
    def pid(self):
        return self._process.pid

    @property
    def data_dir(self):
        """The folder the server keeps its buckets in (rclone serves it as they are)."""
        return Path(self._dir) / "data"

    def cpu_s(self):
        return process_cpu_s(self.pid)

    def stop(self):
        _stop(self._process)
        shutil.rmtree(self._dir, ignore_errors=True)


def start_server(choice):
    """Start the server asked for; with 'auto', the lightest one that works here.

    Returns (server, notes): the notes say which servers were passed over, and why.
    """
    order = ["rclone", "s3rver", "moto"] if choice == "auto" else [choice]
    notes = []
    for kind in order:
        try:
            server = Server(kind)
        except peers.Unavailable as err:
            notes.append(f"{kind} unavailable: {err}")
            continue
        if kind == "moto":
            notes.append("moto serves about 250 requests/s per core: expect it, not the "
                         "clients, to bound the concurrent variants")
        return server, notes
    raise SystemExit("no S3 server could be started: " + "; ".join(notes))


class Proxy:
    """bench/delayproxy.py in front of the server; counts the requests it forwards."""

    def __init__(self, upstream_port, latency_ms, python, checksums=False):
        self.python = python
        self.checksums = checksums
        self._process = subprocess.Popen(
            [str(python), str(BENCH / "delayproxy.py"), "--upstream", f"127.0.0.1:{upstream_port}",
             "--latency-ms", str(latency_ms), *(["--checksums"] if checksums else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        watchdog = threading.Timer(START_TIMEOUT_S, self._process.kill)
        watchdog.start()
        line = self._process.stdout.readline()
        watchdog.cancel()
        if not line.startswith("listening "):
            _stop(self._process)
            raise SystemExit(f"the delaying proxy did not start (said {line.strip()!r})")
        self.url = "http://" + line.split()[1]
        self.event_loop = line.split()[2] if len(line.split()) > 2 else "asyncio"

    @property
    def pid(self):
        return self._process.pid

    def cpu_s(self):
        return process_cpu_s(self.pid)

    def stats(self):
        """The proxy's counters so far: requests forwarded, checksum mismatches seen."""
        self._process.send_signal(signal.SIGUSR1)
        return {name: int(value) for name, value in
                (word.split("=") for word in self._process.stdout.readline().split()[1:])}

    def requests(self):
        """How many requests the proxy has forwarded so far."""
        return self.stats()["requests"]

    def stop(self):
        _stop(self._process)
