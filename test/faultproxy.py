"""A fault-injecting HTTP/1.1 reverse proxy for tests over a real socket.

Put it between a client and the moto server, then tell it what to break::

    with FaultProxy(server.host, server.port) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        proxy.add_fault("status", status=503)            # next request gets SlowDown
        proxy.add_fault("truncate", method="GET", keep=10)
        proxy.latency_s = 0.2                           # every response, concurrently
        assert proxy.count(method="PUT") == 1

Each client connection is served by its own thread and its own upstream
connection. Bodies are read whole into memory (tests use modest sizes) so
that faults can be applied to them; reads and writes go in large blocks.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http
import logging
import socket
import struct
import threading
import time
import uuid
from typing import BinaryIO

from urllib3 import HTTPHeaderDict

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str]]

_READ_BUFFER_BYTES = 256 * 1024
_MAX_LINE_BYTES = 64 * 1024
_MAX_HEADERS = 200
_UPSTREAM_TIMEOUT_S = 60.0
_ACCEPT_POLL_S = 0.1  # how often the accept loop checks for stop()

# Connection-scoped headers: each hop sets its own (RFC 9110 section 7.6.1).
# moto's werkzeug server sends "Connection: close" on every response; passing
# that on would make every client connection single-use and hide how a client
# reuses its pool after a fault.
_HOP_BY_HOP_RESPONSE_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection"})

# Which keyword parameters each kind of fault accepts.
FAULT_PARAMETERS: dict[str, frozenset[str]] = {
    "status": frozenset({"status", "code", "message"}),
    "reset": frozenset(),
    "truncate": frozenset({"keep", "close"}),
    "drop_after_headers": frozenset({"close"}),
    "flip": frozenset({"offset"}),
    "flip_request": frozenset({"offset"}),
    "delay": frozenset({"seconds"}),
}

_DEFAULT_ERROR_CODES = {500: "InternalError", 503: "SlowDown"}


class ProtocolError(Exception):
    """A peer sent something this proxy does not understand as HTTP/1.1."""


@dataclasses.dataclass
class RequestRecord:
    """One request the proxy received, as the client sent it."""

    method: str
    path: str
    query: str
    headers: HTTPHeaderDict  # case-insensitive, as sent (Expect included)
    body_length: int
    status: int | None = None  # what the client was told; None if it got no status line
    fault: str | None = None  # the kind of fault applied to this request, if any


@dataclasses.dataclass
class Fault:
    """A fault waiting for its next `remaining` matching requests."""

    kind: str
    remaining: int
    method: str | None = None
    path_contains: str | None = None
    query_contains: str | None = None
    params: dict = dataclasses.field(default_factory=dict)

    def matches(self, method: str, path: str, query: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
            and (self.query_contains is None or self.query_contains in query)
        )


@dataclasses.dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: Headers
    body: bytes
    chunked: bool
    trailers: Headers

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    @property
    def wants_keep_alive(self) -> bool:
        if self.version == "HTTP/1.0":
            return False  # no 1.0 keep-alive dance here; nothing modern needs it
        return not _has_token(self.headers, "Connection", "close")


@dataclasses.dataclass
class _Response:
    status: int
    reason: str
    headers: Headers
    body: bytes
    chunked: bool = False
    trailers: Headers = dataclasses.field(default_factory=list)
    close_delimited: bool = False  # no length given: the body ends when the connection does
    upstream_closes: bool = False


class FaultProxy:
    """A threaded HTTP/1.1 reverse proxy to `upstream_host:upstream_port` that injects faults.

    Faults come from add_fault(); every request is recorded in `requests`.
    `latency_s` delays every response, in the request's own thread, so
    concurrent requests are delayed concurrently.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        latency_s: float = 0.0,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ):
        self.upstream_address = (upstream_host, upstream_port)
        self.latency_s = latency_s
        self._initial_latency_s = latency_s
        self._listen_address = (listen_host, listen_port)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._records: list[RequestRecord] = []
        self._live_sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()

    # -- lifecycle --------------------------------------------------------

    @property
    def host(self) -> str:
        return self._bound_address()[0]

    @property
    def port(self) -> int:
        return self._bound_address()[1]

    @property
    def url(self) -> str:
        host, port = self._bound_address()
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        """Listen on the configured address (port 0: a free one) and serve; return self."""
        if self._listener is not None:
            raise RuntimeError("FaultProxy is already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self._listen_address)
        listener.listen(256)
        # Polling accept() is the portable way to notice stop(): closing a
        # listening socket does not wake a blocked accept() everywhere.
        listener.settimeout(_ACCEPT_POLL_S)
        self._listener = listener
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"faultproxy-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, cut every live connection, and join the threads (bounded)."""
        if self._listener is None:
            return
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()
        with self._lock:
            live = list(self._live_sockets)
            threads = list(self._threads)
        for sock in live:
            # shutdown() wakes a thread blocked in recv(); close() alone does not.
            _quietly(sock.shutdown, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._listener = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._listener else "stopped"
        return f"<FaultProxy {where} -> {self.upstream_address[0]}:{self.upstream_address[1]}>"

    # -- faults and the request log --------------------------------------

    def add_fault(
        self,
        kind: str,
        count: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        query_contains: str | None = None,
        **params,
    ) -> Fault:
        """Apply a fault of `kind` to the next `count` matching requests; return it.

        Matching: `method` exactly, `path_contains` and `query_contains` as
        substrings of the raw (still percent-encoded) path and query. The
        first queued fault that matches and is not used up applies.

        Kinds and their parameters:
          status(status=503, code=..., message=...)  answer an S3 XML error, do not forward
          reset()                       read the request, then close with a TCP RST
          truncate(keep=len//2, close="fin"|"rst")  full headers, `keep` body bytes, close
          drop_after_headers(close=...)  truncate with keep=0
          flip(offset=len//2)           XOR 0xFF one byte of the response body
          flip_request(offset=len//2)   XOR 0xFF one byte of the request body, then forward
          delay(seconds)                wait before answering
        An offset past the end of a body flips nothing.
        """
        if kind not in FAULT_PARAMETERS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_PARAMETERS)}")
        unknown = set(params) - FAULT_PARAMETERS[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} takes no parameter(s) {sorted(unknown)}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, not {count!r}")
        _check_fault_params(kind, params)
        fault = Fault(kind, count, method, path_contains, query_contains, dict(params))
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def faults(self) -> list[Fault]:
        """The faults not yet used up, in the order they were added."""
        with self._lock:
            return [f for f in self._faults if f.remaining > 0]

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return list(self._records)

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        """How many logged requests have this method and a path containing this text."""
        return sum(
            1
            for record in self.requests
            if (method is None or record.method == method)
            and (path_contains is None or path_contains in record.path)
        )

    def clear(self) -> None:
        """Forget all faults and the request log; put latency_s back to its initial value."""
        with self._lock:
            self._faults.clear()
            self._records.clear()
        self.latency_s = self._initial_latency_s

    # -- serving ----------------------------------------------------------

    def _bound_address(self) -> tuple[str, int]:
        if self._listener is None:
            raise RuntimeError("FaultProxy is not started")
        return self._listener.getsockname()[:2]

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                raise
            client.settimeout(None)  # idle keep-alive connections wait for the client
            thread = threading.Thread(
                target=self._serve_client, args=(client,), name="faultproxy-conn", daemon=True
            )
            with self._lock:
                self._threads.add(thread)
                self._live_sockets.add(client)
            thread.start()

