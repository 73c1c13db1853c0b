"""Keep-alive HTTP/1.1 connections to S3 endpoints, for the lean request path.

Built on the standard library's http.client, which looks its socket functions up at
each connect: gevent's sockets once the program patched, native ones otherwise. Idle
connections wait in a deque per endpoint (appends and pops are atomic, so no lock is
held across a switch); a connection goes back only after its response was read to
the end. A request that fails on a connection reused from the pool, before any answer
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
SEND_BLOCK = MiB  # file bodies go out in blocks this big (http.client's default: 8 KiB)

# Failures of a reused connection that mean "the server closed it while it was idle".
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)


class TransportError(Exception):
    """The exchange failed below HTTP; ``phase`` is "connect", "send" or "receive"."""

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


class Response:
    """An answer: status, headers (lower-case names), and the body to read.

    Reading the body to its end hands the connection back to the pool; closing it
    earlier drops the connection (the rest of the body is not wanted).
    """

    def __init__(self, raw: http.client.HTTPResponse, release: Callable[[bool], None],
                 failure: Callable[["TransportError"], BaseException]) -> None:
        self._raw = raw
        self._release: Optional[Callable[[bool], None]] = release
        self._failure = failure
        self.status = raw.status
        self.reason = raw.reason
        self.headers = {name.lower(): value for name, value in raw.getheaders()}
        if raw.isclosed() or raw.length == 0:
            self._finish(reusable=True)

    def _finish(self, reusable: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(reusable and not self._raw.will_close)

    def read(self, amount: Optional[int] = None) -> bytes:
        try:
            data = self._raw.read() if amount is None or amount < 0 else self._raw.read(amount)
        except BaseException as exc:
            raise self._broken(exc) from exc
        self._check_end(len(data), amount)
        return data

    def readinto(self, buffer: Any) -> int:
        try:
            count = self._raw.readinto(buffer)
        except BaseException as exc:
            raise self._broken(exc) from exc
        self._check_end(count, len(buffer))
        return count

    def _check_end(self, got: int, wanted: Optional[int]) -> None:
        """Hand the connection back once the body ended; a body cut short is an error.

        http.client returns an empty read where the connection closed before
        Content-Length bytes came; botocore raises, and so does this.
        """
        if not self._raw.isclosed():
            return
        missing = self._raw.length
        if not got and wanted != 0 and missing:
            raise self._broken(http.client.IncompleteRead(b"", missing))
        self._finish(reusable=not missing)

    def _broken(self, exc: BaseException) -> BaseException:
        self._finish(reusable=False)
        return self._failure(TransportError("receive", exc))

    def close(self) -> None:
        if self._release is not None:
            self._finish(reusable=False)
        self._raw.close()


class Pool:
    """Connections to any number of endpoints, at most ``size`` idle ones each."""

    def __init__(self, *, size: int, connect_timeout: float, read_timeout: float,
                 tls: Callable[[], ssl.SSLContext]) -> None:
        self._size = size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._tls = tls
        self._tls_context: Optional[ssl.SSLContext] = None
        self._idle: dict[Endpoint, collections.deque[http.client.HTTPConnection]] = {}
        # Idle connections are closed when the pool goes, or the program ends.
        self._closer = weakref.finalize(self, _close_idle, self._idle)

    def request(self, endpoint: Endpoint, method: str, target: str, headers: Mapping[str, str],
                body: Optional[Body] = None,
                failure: Callable[[TransportError], BaseException] = lambda exc: exc) -> Response:
        """Send one request and return its response (the body still to be read).

        ``failure`` turns a TransportError of the body's reading into what to raise.
        """
        idle = self._idle.get(endpoint)
        if idle is None:
            idle = self._idle.setdefault(endpoint, collections.deque())
        start = body.tell() if body is not None and hasattr(body, "tell") else None
        try:
            connection = idle.pop()
        except IndexError:
            connection = None
        if connection is not None:
            try:
                return self._exchange(connection, idle, method, target, headers, body, failure)
            except TransportError as exc:
                if not (isinstance(exc.cause, _STALE) and exc.phase in ("send", "status")):
                    raise
                if start is not None:
                    body.seek(start)  # type: ignore[union-attr]
        return self._exchange(self._connect(endpoint), idle, method, target, headers, body, failure)

    def _connect(self, endpoint: Endpoint) -> http.client.HTTPConnection:
        parts = urllib.parse.urlsplit(endpoint.url)
        if endpoint.scheme == "https":
            if self._tls_context is None:
                self._tls_context = self._tls()
            return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=self._connect_timeout,
                                               context=self._tls_context, blocksize=SEND_BLOCK)
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self._connect_timeout,
                                          blocksize=SEND_BLOCK)

    def _exchange(self, connection: http.client.HTTPConnection, idle: "collections.deque[Any]", method: str,
                  target: str, headers: Mapping[str, str], body: Optional[Body],
                  failure: Callable[[TransportError], BaseException]) -> Response:
        if connection.sock is None:
            try:
                connection.connect()
            except BaseException as exc:
                connection.close()
                raise TransportError("connect", exc) from exc
            sock: Any = connection.sock
            sock.settimeout(self._read_timeout)
            # Headers and a small body may go out in separate writes: no waiting for
            # delayed ACKs between them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection.request(method, target, body=body, headers=dict(headers))
        except BaseException as exc:
            connection.close()
            raise TransportError("send", exc) from exc
        try:
            raw = connection.getresponse()
        except BaseException as exc:
            connection.close()
            raise TransportError("status", exc) from exc

        def release(reusable: bool) -> None:
            if reusable and len(idle) < self._size:
                idle.append(connection)
            else:
                connection.close()

        return Response(raw, release, failure)

    def close(self) -> None:
        self._closer()


def _close_idle(pools: "dict[Endpoint, collections.deque[http.client.HTTPConnection]]") -> None:
    for idle in pools.values():
        while idle:
            idle.pop().close()
