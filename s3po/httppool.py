"""Keep-alive HTTP/1.1 connections to S3 endpoints, for the lean request path.

A small HTTP/1.1 client of its own: a request goes out as one block of bytes (and its
body), an answer's status line and headers are read without the email parser that
http.client uses (a tenth of a millisecond per request, which is most of what a
small object costs). Sockets come from the socket and ssl modules looked up at each
connect: gevent's once the program patched, native ones otherwise.

Idle connections wait in a deque per endpoint (appends and pops are atomic, so no lock
is held across a switch); a connection goes back only after its answer was read to the
end. A request that fails on a connection reused from the pool, before any answer
came, is sent once more on a new connection: the server had closed the idle one, and
the request never reached it.
"""

from __future__ import annotations

import collections
import http.client
import socket
import ssl
import urllib.parse
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from .units import MiB

__all__ = ["Endpoint", "Pool", "Response", "TransportError"]

Body = Union[bytes, bytearray, memoryview, Any]  # or a binary file positioned at its start
SEND_BLOCK = MiB  # file bodies go out in blocks this big
_READ_BUFFER = 64 * 1024
_MAX_LINE = 64 * 1024
_MAX_HEADERS = 256
# Bodies this small go out in the same write as the headers.
_COALESCE = 64 * 1024

# Failures of a reused connection that mean "the server closed it while it was idle".
_STALE = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, EOFError)


class TransportError(Exception):
    """The exchange failed below HTTP; ``phase`` is "connect", "send", "status" or "receive"."""

    def __init__(self, phase: str, cause: BaseException) -> None:
        super().__init__(f"{phase}: {type(cause).__name__}: {cause}")
        self.phase = phase
        self.cause = cause


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme and host[:port] (the HTTP Host header's value)."""

    scheme: str
    netloc: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


class _Connection:
    """One socket to an endpoint, and the buffered reader over it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: Any = sock.makefile("rb", buffering=_READ_BUFFER)

    def send(self, head: bytes, body: Optional[Body]) -> None:
        sock = self.sock
        if body is None or isinstance(body, (bytes, bytearray, memoryview)):
            if body is not None and len(body) <= _COALESCE:
                sock.sendall(head + bytes(body))
                return
            sock.sendall(head)
            if body is not None:
                sock.sendall(body)
            return
        sock.sendall(head)
        while True:
            block = body.read(SEND_BLOCK)
            if not block:
                return
            sock.sendall(block)

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


class Response:
    """An answer: status, headers (lower-case names), and the body to read.

    Reading the body to its end hands the connection back to the pool; closing it
    earlier drops the connection (the rest of the body is not wanted). A body cut
    short (the connection closed before Content-Length bytes came) raises, as
    botocore does.
    """

    def __init__(self, status: int, reason: str, headers: dict[str, str], connection: _Connection,
                 framing: str, length: Optional[int], reusable: bool, release: Callable[[bool], None],
                 failure: Callable[[TransportError], BaseException]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._connection = connection
        self._framing = framing  # "length", "chunked" or "close"
        self._left = length if framing == "length" else (0 if framing == "chunked" else None)
        self._reusable = reusable
        self._release: Optional[Callable[[bool], None]] = release
        self._failure = failure
        self._ended = False
        if framing == "length" and length == 0:
            self._end()

    def _end(self) -> None:
        self._ended = True
        self._finish(self._reusable)

    def _finish(self, reusable: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(reusable)

    def read(self, amount: Optional[int] = None) -> bytes:
        if amount is None or amount < 0:
            pieces: list[bytes] = []
            while True:
                piece = self.read(MiB)
                if not piece:
                    return b"".join(pieces)
                pieces.append(piece)
        if self._framing == "chunked":
            buffer = bytearray(amount)
            count = self.readinto(buffer)
            del buffer[count:]
            return bytes(buffer)
        if self._ended or amount == 0:
            return b""
        want = amount if self._left is None else min(amount, self._left)
        try:
            data = self._connection.reader.read(want)
        except BaseException as exc:
            self._finish(False)
            _reraise_interruption(exc)
            raise self._failure(TransportError("receive", exc)) from exc
        self._account(len(data))
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        if self._ended or len(buffer) == 0:
            return 0
        try:
            if self._framing == "chunked":
                return self._readinto_chunked(buffer)
            view = memoryview(buffer)
            if self._left is not None:
                view = view[:self._left]
            count = self._connection.reader.readinto(view)
        except BaseException as exc:
            self._finish(False)
            _reraise_interruption(exc)
            raise self._failure(TransportError("receive", exc)) from exc
        self._account(count)
        return int(count)

    def _account(self, count: int) -> None:
        """Count ``count`` bytes of the body just read (0: the connection ended)."""
        if not count:
            if self._left:  # the connection ended before the body did
                self._finish(False)
                raise self._failure(TransportError("receive", http.client.IncompleteRead(b"", self._left)))
            self._ended = True
            self._finish(False)  # a body ended by the connection's close
            return
        if self._left is not None:
            self._left -= count
            if self._left == 0:
                self._end()

    def _readinto_chunked(self, buffer: Any) -> int:
        reader = self._connection.reader
        if not self._left:
            size_line = reader.readline(_MAX_LINE)
            if not size_line:
                raise http.client.IncompleteRead(b"")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while reader.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._end()
                return 0
            self._left = size
        view = memoryview(buffer)[:self._left]
        count = reader.readinto(view)
        if not count:
            raise http.client.IncompleteRead(b"", self._left)
        self._left -= count
        if self._left == 0:
            reader.readline(_MAX_LINE)  # the CRLF after a chunk
        return int(count)

    def close(self) -> None:
        if self._release is not None:
            self._finish(False)


def _reraise_interruption(exc: BaseException) -> None:
    """Raise ``exc`` itself when it is not the network's: Ctrl-C, a gevent Timeout, a
    killed greenlet belong to the caller, and must neither become a failure of the
    connection nor be retried as one. (The connection, left mid-exchange, is closed.)"""
    if not isinstance(exc, Exception):
        raise exc


class Pool:
    """Connections to any number of endpoints, at most ``size`` idle ones each."""

    def __init__(self, *, size: int, connect_timeout: float, read_timeout: float,
                 tls: Callable[[], ssl.SSLContext]) -> None:
        self._size = size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._tls = tls
        self._tls_context: Optional[ssl.SSLContext] = None
        self._idle: dict[Endpoint, collections.deque[_Connection]] = {}
        # Idle connections are closed when the pool goes, or the program ends.
        self._closer = weakref.finalize(self, _close_idle, self._idle)

    def request(self, endpoint: Endpoint, method: str, target: str, headers: Mapping[str, str],
                body: Optional[Body] = None,
                failure: Callable[[TransportError], BaseException] = lambda exc: exc) -> Response:
        """Send one request and return its response (the body still to be read).

        ``failure`` turns a TransportError of the body's reading into what to raise.
        """
        head = "".join((f"{method} {target} HTTP/1.1\r\nHost: {endpoint.netloc}\r\n",
                        *(f"{name}: {value}\r\n" for name, value in headers.items()), "\r\n")).encode("latin-1")
        idle = self._idle.get(endpoint)
        if idle is None:
            idle = self._idle.setdefault(endpoint, collections.deque())
        start = body.tell() if body is not None and hasattr(body, "tell") else None
        try:
            connection: Optional[_Connection] = idle.pop()
        except IndexError:
            connection = None
        if connection is not None:
            try:
                return self._exchange(connection, idle, method, head, body, failure)
            except TransportError as exc:
                if not (isinstance(exc.cause, _STALE) and exc.phase in ("send", "status")):
                    raise
                if start is not None:
                    body.seek(start)  # type: ignore[union-attr]
        return self._exchange(self._connect(endpoint), idle, method, head, body, failure)

    def _connect(self, endpoint: Endpoint) -> _Connection:
        parts = urllib.parse.urlsplit(endpoint.url)
        host = parts.hostname or ""
        port = parts.port or (443 if endpoint.scheme == "https" else 80)
        try:
            sock = socket.create_connection((host, port), timeout=self._connect_timeout)
            try:
                # Headers and a body may go out in separate writes: no waiting for
                # delayed ACKs between them.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if endpoint.scheme == "https":
                    if self._tls_context is None:
                        self._tls_context = self._tls()
                    sock = self._tls_context.wrap_socket(sock, server_hostname=host)
                sock.settimeout(self._read_timeout)
            except BaseException:
                sock.close()
                raise
        except BaseException as exc:
            _reraise_interruption(exc)
            raise TransportError("connect", exc) from exc
        return _Connection(sock)

    def _exchange(self, connection: _Connection, idle: "collections.deque[_Connection]", method: str,
                  head: bytes, body: Optional[Body], failure: Callable[[TransportError], BaseException]
                  ) -> Response:
        try:
            connection.send(head, body)
        except BaseException as exc:
            connection.close()
            _reraise_interruption(exc)
            raise TransportError("send", exc) from exc
        try:
            status, reason, headers, version = _read_head(connection.reader)
        except BaseException as exc:
            connection.close()
            _reraise_interruption(exc)
            raise TransportError("status", exc) from exc
        framing, length = _framing(method, status, headers)
        reusable = (version == "HTTP/1.1" and framing != "close"
                    and "close" not in headers.get("connection", "").lower())

        def release(reusable: bool) -> None:
            if reusable and len(idle) < self._size:
                idle.append(connection)
            else:
                connection.close()

        return Response(status, reason, headers, connection, framing, length, reusable, release, failure)

    def close(self) -> None:
        self._closer()


def _read_head(reader: Any) -> tuple[int, str, dict[str, str], str]:
    """The status line and headers of an answer (a 100 Continue skipped)."""
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if not line:
            raise http.client.RemoteDisconnected("the server closed the connection without an answer")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        status_text, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not status_text.isdigit():
            raise http.client.BadStatusLine(line.decode("latin-1", "replace"))
        status = int(status_text)
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = reader.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise http.client.IncompleteRead(b"")
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        else:
            raise http.client.LineTooLong("too many headers")
        if status != 100:
            return status, reason, headers, version


def _framing(method: str, status: int, headers: Mapping[str, str]) -> tuple[str, Optional[int]]:
    """How the answer's body ends: ("length", n), ("chunked", None) or ("close", None)."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return "length", 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked", None
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        return "length", int(length)
    return "close", None


def _close_idle(pools: "dict[Endpoint, collections.deque[_Connection]]") -> None:
    for idle in pools.values():
        while idle:
            idle.pop().close()
