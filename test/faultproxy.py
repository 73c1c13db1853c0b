"""A fault-injecting HTTP/1.1 reverse proxy for tests over a real socket.

Put it between a client and the moto server, then tell it what to break::

    with FaultProxy(server.host, server.port) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        proxy.add_fault("status", status=503)            # next request gets SlowDown
        proxy.add_fault("truncate", method="GET", keep=10)
        proxy.latency_s = 0.2                           # every response, concurrently
        proxy.ignored_request_headers = {"If-Match"}    # a store that ignores If-Match
        proxy.response_headers = {"ETag": '"..."'}      # a store with ETags of its own
        proxy.checksums = ChecksumStore()               # a store that verifies checksums, as S3
        assert proxy.count(method="PUT") == 1

Each client connection is served by its own thread and its own upstream
connection. Bodies are read whole into memory (tests use modest sizes) so
that faults can be applied to them; reads and writes go in large blocks.

Given `tls=` (an ssl.SSLContext with a server certificate), the proxy speaks
HTTPS to its clients and still plain HTTP to the upstream; every fault works
the same. Over TLS, "reset" and close="rst" send a TCP RST under the TLS
session, and close="fin" a FIN with no close_notify first, as a crashed server
would. A Python client may see both as a plain end of stream: ssl suppresses
ragged EOFs, and CPython (3.11 at least) reports a reset under TLS as one.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http
import logging
import socket
import ssl
import struct
import threading
import time
import uuid
from typing import BinaryIO

from urllib3 import HTTPHeaderDict

from s3po.testing.checksumstore import ChecksumStore

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str]]

_READ_BUFFER_BYTES = 256 * 1024
_COALESCE_LIMIT_BYTES = 256 * 1024  # below this, headers and body go out in one write
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
    "status": frozenset({"status", "code", "message", "seconds"}),
    "reset": frozenset(),
    "truncate": frozenset({"keep", "close"}),
    "drop_after_headers": frozenset({"close"}),
    "flip": frozenset({"offset"}),
    "flip_request": frozenset({"offset"}),
    "delay": frozenset({"seconds"}),
    "hold": frozenset({"seconds"}),
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
    header_contains: tuple[str, str] | None = None  # (header name, text in its value)

    def matches(self, method: str, path: str, query: str, headers: Headers = ()) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
            and (self.query_contains is None or self.query_contains in query)
            and (self.header_contains is None or self._header_matches(headers))
        )

    def _header_matches(self, headers: Headers) -> bool:
        name, text = self.header_contains
        return any(key.lower() == name.lower() and text in value for key, value in headers)


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
    With `tls` (a server-side SSLContext) clients speak HTTPS to it.
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
        tls: ssl.SSLContext | None = None,
    ):
        self.upstream_address = (upstream_host, upstream_port)
        self._tls = tls
        self.latency_s = latency_s
        self._initial_latency_s = latency_s
        # A store's own ways, for every request until clear(): request headers it never
        # sees (a store that ignores If-Match), response headers it always sends (a
        # store whose ETags are not MD5s).
        self.ignored_request_headers: set[str] = set()
        self.response_headers: dict[str, str] = {}
        # A store that verifies, keeps and returns checksums as S3 does (None: the
        # upstream's own ways; moto keeps almost none).
        self.checksums: ChecksumStore | None = None
        # Over TLS: the next `garble_handshakes` client hellos are answered with bytes
        # that are not TLS, then the connection closes, as an overloaded server or a
        # middlebox may do; the client sees a TLS error (botocore's SSLError).
        self.garble_handshakes = 0
        self.handshakes_garbled = 0
        self._listen_address = (listen_host, listen_port)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._records: list[RequestRecord] = []
        self._live_sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._in_flight = 0
        self.max_in_flight = 0  # the most requests being answered at once, since clear()

    # -- lifecycle --------------------------------------------------------

    @property
    def host(self) -> str:
        return self._bound_address()[0]

    @property
    def port(self) -> int:
        return self._bound_address()[1]

    @property
    def scheme(self) -> str:
        return "http" if self._tls is None else "https"

    @property
    def url(self) -> str:
        host, port = self._bound_address()
        return f"{self.scheme}://{host}:{port}"

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
        header_contains: tuple[str, str] | None = None,
        **params,
    ) -> Fault:
        """Apply a fault of `kind` to the next `count` matching requests; return it.

        Matching: `method` exactly, `path_contains` and `query_contains` as
        substrings of the raw (still percent-encoded) path and query, and
        `header_contains=(name, text)` as a substring of that header's value. The
        first queued fault that matches and is not used up applies.

        Kinds and their parameters:
          status(status=503, code=..., message=..., seconds=0)  answer an S3 XML error (after
                                        `seconds`), do not forward
          reset()                       read the request, then close with a TCP RST
          truncate(keep=len//2, close="fin"|"rst")  full headers, `keep` body bytes, close
          drop_after_headers(close=...)  truncate with keep=0
          flip(offset=len//2)           XOR 0xFF one byte of the response body
          flip_request(offset=len//2)   XOR 0xFF one byte of the request body, then forward
          delay(seconds)                wait before answering
          hold(seconds)                 wait before forwarding (the server sees it later)
        An offset past the end of a body flips nothing.
        """
        if kind not in FAULT_PARAMETERS:
            raise ValueError(
                f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_PARAMETERS)}"
            )
        unknown = set(params) - FAULT_PARAMETERS[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} takes no parameter(s) {sorted(unknown)}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, not {count!r}")
        _check_fault_params(kind, params)
        fault = Fault(kind, count, method, path_contains, query_contains, dict(params), header_contains)
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def faults(self) -> list[Fault]:
        """The faults not yet used up, in the order they were added."""
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return list(self._records)

    def count(self, method: str | None = None, path_contains: str | None = None,
              query_contains: str | None = None) -> int:
        """How many logged requests have this method, and a path and query containing these texts."""
        return sum(
            1
            for record in self.requests
            if (method is None or record.method == method)
            and (path_contains is None or path_contains in record.path)
            and (query_contains is None or query_contains in record.query)
        )

    def clear(self) -> None:
        """Forget all faults and the request log; put latency_s back to its initial value."""
        with self._lock:
            self._faults.clear()
            self._records.clear()
            self.max_in_flight = self._in_flight
        self.latency_s = self._initial_latency_s
        self.ignored_request_headers = set()
        self.response_headers = {}
        self.checksums = None
        self.garble_handshakes = 0
        self.handshakes_garbled = 0

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
                # Say so, but keep serving: an error such as EMFILE can pass.
                logger.exception("faultproxy: accept() failed")
                self._stopping.wait(_ACCEPT_POLL_S)
                continue
            client.settimeout(None)  # idle keep-alive connections wait for the client
            thread = threading.Thread(
                target=self._serve_client, args=(client,), name="faultproxy-conn", daemon=True
            )
            with self._lock:
                self._threads.add(thread)
                self._live_sockets.add(client)
            thread.start()

    def _serve_client(self, client: socket.socket) -> None:
        _set_nodelay(client)
        rfile = None
        upstream = _Upstream(self.upstream_address, self._track_socket, self._untrack_socket)
        try:
            if self._tls is not None:
                if self._claim_garbled_handshake():
                    client.recv(5)  # the start of the client's hello
                    client.sendall(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                    return
                client = self._wrap_tls(client)
                if self._stopping.is_set():
                    return  # stop() may have listed the sockets before the swap
                # Here, not in the accept loop: a slow or failing handshake holds up
                # only its own connection.
                client.do_handshake()
            rfile = client.makefile("rb", buffering=_READ_BUFFER_BYTES)
            keep_alive = True
            while keep_alive and not self._stopping.is_set():
                request = _read_request(rfile, client)
                if request is None:
                    break  # the client closed between requests
                keep_alive = self._answer(request, client, upstream)
        except (OSError, ProtocolError) as err:
            logger.debug("faultproxy: dropping a client connection: %r", err)
        except Exception:
            logger.exception("faultproxy: unexpected error serving a client")
        finally:
            upstream.close()
            # The socket's descriptor is only released once the file made by
            # makefile() is closed too; a pending RST goes out at that moment.
            if rfile is not None:
                rfile.close()
            client.close()
            self._untrack_socket(client)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _claim_garbled_handshake(self) -> bool:
        with self._lock:
            if self.garble_handshakes <= 0:
                return False
            self.garble_handshakes -= 1
            self.handshakes_garbled += 1
            return True

    def _wrap_tls(self, client: socket.socket) -> ssl.SSLSocket:
        """The TLS socket over `client`, tracked in its place; the handshake is left to the caller."""
        wrapped = self._tls.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        # wrap_socket() took over the descriptor and left `client` closed: from now
        # on stop() must shut down the new socket to wake this thread.
        with self._lock:
            self._live_sockets.discard(client)
            self._live_sockets.add(wrapped)
        return wrapped

    def _answer(self, request: _Request, client: socket.socket, upstream: _Upstream) -> bool:
        """Answer one request, faults included; return whether the connection stays open."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        counted = [True]

        def done() -> None:
            # Called just before the answer goes out: by the time the client has it
            # and sends its next request, this one no longer counts.
            if counted[0]:
                counted[0] = False
                with self._lock:
                    self._in_flight -= 1

        try:
            return self._answer_counted(request, client, upstream, done)
        finally:
            done()

    def _answer_counted(self, request: _Request, client: socket.socket, upstream: _Upstream,
                        done=lambda: None) -> bool:
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=HTTPHeaderDict(request.headers),
            body_length=len(request.body),
        )
        with self._lock:
            self._records.append(record)
            fault = self._claim_fault(request)
        kind = fault.kind if fault else None
        params = fault.params if fault else {}
        record.fault = kind

        if kind == "reset":
            self._pause()
            _arm_reset(client)
            return False

        if kind == "status":
            self._stopping.wait(params.get("seconds", 0.0))  # an answer that comes late
            response = _error_response(**{k: v for k, v in params.items() if k != "seconds"})
        else:
            if kind == "flip_request":
                request.body = _flip_byte(request.body, params.get("offset"))
            if kind == "hold":
                self._stopping.wait(params["seconds"])
            ignored = {name.lower() for name in self.ignored_request_headers}
            if ignored:
                request.headers = [(name, value) for name, value in request.headers
                                   if name.lower() not in ignored]
            checksums = self.checksums
            arrival = checksums.begin(request.method, request.path, request.query, request.headers) \
                if checksums is not None else None
            refusal = None
            if arrival is not None:
                arrival.update(request.body)
                refusal = arrival.verdict()
            if refusal is not None:
                response = _error_response(refusal.status, refusal.code, refusal.message)
            else:
                try:
                    response = upstream.exchange(request)
                except (OSError, ProtocolError) as err:
                    message = f"faultproxy: upstream failed: {err!r}"
                    response = _error_response(502, "BadGateway", message)
                if arrival is not None:
                    response.headers = arrival.answer_headers(response.status, response.headers)
                    body = arrival.answer_body(response.status, response.body)
                    if body is not response.body:
                        response.body = body
                        response.headers = [(name, str(len(body)) if name.lower() == "content-length" else value)
                                            for name, value in response.headers]

        self._pause(params["seconds"] if kind == "delay" else 0.0)
        for name, value in dict(self.response_headers).items():
            present = any(key.lower() == name.lower() for key, _ in response.headers)
            if present:
                response.headers = [(key, value if key.lower() == name.lower() else old)
                                    for key, old in response.headers]
        if kind == "flip":
            response.body = _flip_byte(response.body, params.get("offset"))

        keep_alive = request.wants_keep_alive and not response.close_delimited
        head = _response_head(response, keep_alive)
        has_body = _response_has_body(request.method, response.status)
        prefix, suffix = _body_framing(response) if has_body else (b"", b"")
        # Logged before sending: a test may look at the log the moment it has its answer.
        record.status = response.status

        if kind in ("truncate", "drop_after_headers"):
            keep = params.get("keep", len(response.body) // 2)
            if kind == "drop_after_headers":
                keep = 0
            done()
            _send(client, head, *((prefix, response.body[:keep]) if has_body else ()))
            if params.get("close", "fin") == "rst":
                _arm_reset(client)
            return False

        done()
        _send(client, head, *((prefix, response.body, suffix) if has_body else ()))
        return keep_alive

    def _claim_fault(self, request: _Request) -> Fault | None:
        # Called with self._lock held, so two threads never claim the same use.
        for fault in self._faults:
            if fault.matches(request.method, request.path, request.query, request.headers):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _pause(self, extra_s: float = 0.0) -> None:
        delay_s = self.latency_s + extra_s
        if delay_s > 0:
            self._stopping.wait(delay_s)  # an Event, so stop() cuts the wait short

    def _track_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._live_sockets.add(sock)

    def _untrack_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._live_sockets.discard(sock)


class _Upstream:
    """One client connection's connection to the upstream server, opened when needed."""

    def __init__(self, address: tuple[str, int], on_open, on_close):
        self._address = address
        self._on_open = on_open
        self._on_close = on_close
        self._sock: socket.socket | None = None
        self._rfile: BinaryIO | None = None

    def exchange(self, request: _Request) -> _Response:
        """Send `request` (without its Expect header) and read the whole response."""
        reused = self._sock is not None
        try:
            return self._exchange_once(request)
        except _ClosedBeforeResponse:
            if not reused:
                raise ProtocolError("upstream closed the connection without answering") from None
        # A kept-alive connection may have been closed by the server just as
        # it was reused; the request never got an answer, so send it afresh.
        return self._exchange_once(request)

    def close(self) -> None:
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        self._rfile.close()
        sock.close()
        self._on_close(sock)

    def _exchange_once(self, request: _Request) -> _Response:
        if self._sock is None:
            self._connect()
        try:
            prefix, suffix = _body_framing(request)
            _send(self._sock, _request_head(request), prefix, request.body, suffix)
            response = _read_response(self._rfile, request.method)
        except (ConnectionResetError, BrokenPipeError):
            self.close()
            raise _ClosedBeforeResponse() from None
        except BaseException:
            self.close()
            raise
        if response is None:
            self.close()
            raise _ClosedBeforeResponse()
        if response.upstream_closes:
            self.close()
        return response

    def _connect(self) -> None:
        sock = socket.create_connection(self._address, timeout=_UPSTREAM_TIMEOUT_S)
        _set_nodelay(sock)
        self._sock = sock
        self._rfile = sock.makefile("rb", buffering=_READ_BUFFER_BYTES)
        self._on_open(sock)


class _ClosedBeforeResponse(Exception):
    """The upstream connection ended before a status line arrived."""


# -- reading HTTP/1.1 --------------------------------------------------------


def _read_request(rfile: BinaryIO, client: socket.socket) -> _Request | None:
    """Read one request, answering `Expect: 100-continue`; None on a clean EOF."""
    line = _read_line(rfile)
    while line in (b"\r\n", b"\n"):  # RFC 9112 section 2.2: skip stray empty lines
        line = _read_line(rfile)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"bad request line {line!r}")
    method, target, version = parts
    headers = _read_header_block(rfile)
    if version != "HTTP/1.0" and _has_token(headers, "Expect", "100-continue"):
        # Answered here rather than forwarded: the proxy holds the body
        # anyway, and botocore waits a whole second for this line before it
        # sends a file-like body to a server that stays silent.
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    body, chunked, trailers = _read_message_body(rfile, headers)
    return _Request(method, target, version, headers, body, chunked, trailers)


def _read_response(rfile: BinaryIO, method: str) -> _Response | None:
    """Read one final response to a `method` request; None if the stream ends first."""
    line = _read_line(rfile)
    if not line:
        return None
    while True:
        version, status, reason = _parse_status_line(line)
        headers = _read_header_block(rfile)
        if not 100 <= status < 200:
            break
        line = _read_line(rfile)  # an interim 1xx: the final response follows
        if not line:
            raise ProtocolError("upstream closed after an interim response")
    upstream_closes = _has_token(headers, "Connection", "close") or (
        version == "HTTP/1.0" and not _has_token(headers, "Connection", "keep-alive")
    )
    if not _response_has_body(method, status):
        return _Response(status, reason, headers, b"", upstream_closes=upstream_closes)
    if _header(headers, "Transfer-Encoding") is None and _header(headers, "Content-Length") is None:
        # No length at all: the body is whatever comes until the server closes.
        return _Response(
            status, reason, headers, rfile.read(), close_delimited=True, upstream_closes=True
        )
    body, chunked, trailers = _read_message_body(rfile, headers)
    return _Response(
        status, reason, headers, body, chunked, trailers, upstream_closes=upstream_closes
    )


def _read_message_body(rfile: BinaryIO, headers: Headers) -> tuple[bytes, bool, Headers]:
    """Read a body framed by Transfer-Encoding or Content-Length: (body, chunked, trailers)."""
    if _header(headers, "Transfer-Encoding") is not None:
        # Chunked wins over Content-Length when both are present (RFC 9112 6.3).
        codings = [c for v in _header_values(headers, "Transfer-Encoding") for c in _tokens(v)]
        if not codings or codings[-1] != "chunked":
            raise ProtocolError(f"unsupported Transfer-Encoding {codings}")
        body, trailers = _read_chunked(rfile)
        return body, True, trailers
    lengths = {v.strip() for v in _header_values(headers, "Content-Length")}
    if not lengths:
        return b"", False, []
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise ProtocolError(f"bad Content-Length {sorted(lengths)}")
    return _read_exact(rfile, int(lengths.pop())), False, []


def _read_chunked(rfile: BinaryIO) -> tuple[bytes, Headers]:
    pieces = []
    while True:
        size_line = _read_line(rfile)
        if not size_line:
            raise ProtocolError("connection closed inside a chunked body")
        size_text = size_line.split(b";", 1)[0].strip()  # drop chunk extensions
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {size_line!r}") from None
        if size == 0:
            break
        pieces.append(_read_exact(rfile, size))
        if _read_line(rfile) not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk data not followed by CRLF")
    return b"".join(pieces), _read_header_block(rfile)


def _read_header_block(rfile: BinaryIO) -> Headers:
    """Read header lines up to the empty line, keeping names' case and order."""
    headers: Headers = []
    while True:
        line = _read_line(rfile)
        if not line:
            raise ProtocolError("connection closed inside a header block")
        if line in (b"\r\n", b"\n"):
            return headers
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError("obsolete header line folding is not supported")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"malformed header line {line!r}")
        headers.append((name, value.strip()))
        if len(headers) > _MAX_HEADERS:
            raise ProtocolError("too many header lines")


def _parse_status_line(line: bytes) -> tuple[str, int, str]:
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {line!r}")
    return parts[0], int(parts[1]), parts[2] if len(parts) == 3 else ""


def _read_line(rfile: BinaryIO) -> bytes:
    line = rfile.readline(_MAX_LINE_BYTES + 1)
    if len(line) > _MAX_LINE_BYTES:
        raise ProtocolError("line too long")
    return line


def _read_exact(rfile: BinaryIO, size: int) -> bytes:
    data = rfile.read(size)  # a buffered read: loops over large recv()s until `size`
    if len(data) != size:
        raise ProtocolError(f"connection closed after {len(data)} of {size} body bytes")
    return data


def _response_has_body(method: str, status: int) -> bool:
    # RFC 9112 section 6.3: these never have a body, whatever Content-Length says.
    return not (method == "HEAD" or 100 <= status < 200 or status in (204, 304))


# -- writing HTTP/1.1 --------------------------------------------------------


def _request_head(request: _Request) -> bytes:
    # Everything else goes on untouched: botocore signed the Host header and more.
    headers = [(name, value) for name, value in request.headers if name.lower() != "expect"]
    return _head(f"{request.method} {request.target} {request.version}", headers)


def _response_head(response: _Response, keep_alive: bool) -> bytes:
    headers = [
        (name, value)
        for name, value in response.headers
        if name.lower() not in _HOP_BY_HOP_RESPONSE_HEADERS
    ]
    if not keep_alive:
        headers.append(("Connection", "close"))
    return _head(f"HTTP/1.1 {response.status} {response.reason}".rstrip(), headers)


def _head(start_line: str, headers: Headers) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _body_framing(message: _Request | _Response) -> tuple[bytes, bytes]:
    """The bytes that go before and after the body: nothing, or one chunk and the last-chunk."""
    if not message.chunked:
        return b"", b""
    trailers = b"".join(
        f"{name}: {value}\r\n".encode("latin-1") for name, value in message.trailers
    )
    last_chunk = b"0\r\n" + trailers + b"\r\n"
    if not message.body:
        return b"", last_chunk  # a zero-size data chunk would end the body early
    return f"{len(message.body):x}\r\n".encode("ascii"), b"\r\n" + last_chunk


def _send(sock: socket.socket, *pieces: bytes) -> None:
    # Big bodies are not copied just to be joined to their headers.
    if sum(map(len, pieces)) <= _COALESCE_LIMIT_BYTES:
        sock.sendall(b"".join(pieces))
        return
    for piece in pieces:
        if piece:
            sock.sendall(piece)


def _error_response(
    status: int = 503, code: str | None = None, message: str | None = None
) -> _Response:
    """An S3-style XML error response."""
    phrase = http.HTTPStatus(status).phrase
    code = code or _DEFAULT_ERROR_CODES.get(status) or phrase.replace(" ", "")
    message = message or f"Injected by faultproxy: {phrase}"
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{_xml_escape(code)}</Code><Message>{_xml_escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode("utf-8")
    headers = [
        ("Content-Type", "application/xml"),
        ("Content-Length", str(len(body))),
        ("x-amz-request-id", request_id),
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Server", "faultproxy"),
    ]
    return _Response(status, phrase, headers, body)


# -- small helpers -----------------------------------------------------------


def _check_fault_params(kind: str, params: dict) -> None:
    if "status" in params:
        status = params["status"]
        known = isinstance(status, int) and status in set(http.HTTPStatus)
        if not known or not 400 <= status < 600:
            raise ValueError(f"status must be a known 4xx or 5xx HTTP status, not {status!r}")
    for name in ("keep", "offset"):
        if name in params and (not isinstance(params[name], int) or params[name] < 0):
            raise ValueError(f"{name} must be a non-negative int, not {params[name]!r}")
    if params.get("close", "fin") not in ("fin", "rst"):
        raise ValueError(f"close must be 'fin' or 'rst', not {params['close']!r}")
    if kind in ("delay", "hold") or "seconds" in params:
        seconds = params.get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError(f"a delay fault needs seconds >= 0, not {seconds!r}")


def _flip_byte(body: bytes, offset: int | None) -> bytes:
    """`body` with the byte at `offset` (default: the middle) XOR 0xFF."""
    if offset is None:
        offset = len(body) // 2
    if offset >= len(body):
        return body
    flipped = bytearray(body)
    flipped[offset] ^= 0xFF
    return bytes(flipped)


def _header_values(headers: Headers, name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


def _header(headers: Headers, name: str) -> str | None:
    values = _header_values(headers, name)
    return values[0] if values else None


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def _has_token(headers: Headers, name: str, token: str) -> bool:
    return any(token in _tokens(value) for value in _header_values(headers, name))


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _set_nodelay(sock: socket.socket) -> None:
    # Headers and body may leave in separate writes; without this, Nagle and
    # delayed ACKs can hold the second write back by tens of milliseconds.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _arm_reset(sock: socket.socket) -> None:
    """Make the coming close() send a TCP RST instead of a FIN (SO_LINGER with timeout 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _quietly(call, *args) -> None:
    try:
        call(*args)
    except OSError:
        pass
