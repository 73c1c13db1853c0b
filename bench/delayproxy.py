"""A loopback HTTP/1.1 proxy that makes every response wait a fixed latency.

Run as its own process so that its CPU can be measured apart from the clients':

    python bench/delayproxy.py --upstream 127.0.0.1:9000 --latency-ms 20

It prints ``listening HOST:PORT LOOP`` once ready, and ``stats requests=N continues=M``
on each SIGUSR1. Each client connection gets its own upstream connection (keep-alive on
both sides; pipelining is tolerated, not expected). A response leaves the proxy no
earlier than ``latency`` after its request finished arriving, so the server's own service
time hides under the latency as it would behind a real network round trip, and
``objects x latency / concurrency`` is a floor that a client can approach.

Bodies stream through both ways, whatever their size: a request's body is forwarded as it
arrives, and a response's bytes are held only until its deadline. Reading from the server
pauses while more than 1 MiB is held, or while the client's socket buffer is full, and
reading from the client while the server's is; body bytes are passed on without being
copied in this process. So a 1 GiB object costs the proxy a few MiB of memory, and it
moves about 1 GB/s on one core of a small machine.

``Expect: 100-continue`` is answered here at once and stripped before forwarding: the
client should not pay a second round trip for it, and neither should the measurement.

With ``--checksums`` the proxy also behaves as S3 does with checksums, for a server that
does nothing with them (rclone serve s3): it computes the CRC of every upload body as it
streams through and compares it with the ``x-amz-checksum-*`` the request claims, echoes
it, keeps each object's full-object checksum (combined from the parts for a multipart
upload) and returns it on a whole GET or HEAD with ``x-amz-checksum-mode: ENABLED``
(see s3po.testing.checksumstore). A mismatch is counted (``stats ... mismatches=N``), not
refused: the body has already gone on to the server. Its CPU is the proxy's, measured
apart from the clients'.

Built on asyncio protocols rather than streams or a thread per connection, to keep the
cost per request low (most of what remains is the kernel's loopback TCP); it runs on
uvloop when that is installed, which saves about a third.
"""

import argparse
import asyncio
import signal
import time
from collections import deque

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024
HIGH_WATER_BYTES = 1024 * 1024
FLUSH_BYTES = 64 * 1024


class BadMessage(Exception):
    """The bytes on the wire are not HTTP/1.1 this proxy understands."""


class _Framer:
    """Splits a byte stream into HTTP messages, passing the bytes through unchanged.

    ``feed`` returns events in order: ``('head', bytes)``, ``('body', bytes)`` and
    ``('end', None)``. For each head, ``on_head(head)`` is called at once and returns how
    that message's body is delimited: ``('none'|'length'|'chunked'|'close', length)``.
    """

    def __init__(self, on_head):
        self._on_head = on_head
        self._buffer = bytearray()
        self._state = "head"   # head | done | length | chunk-size | chunk-data | trailer | close
        self._remaining = 0

    def feed(self, data):
        # Body bytes pass through as the very objects the transport delivered (sliced only
        # at a message's edges): a 1 GiB body is not copied in this process at all. Only an
        # incomplete head or chunk-size line waits in the buffer for the next read.
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        events = []
        pos, size = 0, len(data)
        while True:
            if self._state == "done":
                events.append(("end", None))
                self._state = "head"
            if pos == size:
                return events
            if self._state == "head":
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    if size - pos > MAX_HEAD_BYTES:
                        raise BadMessage("header section too long")
                    self._buffer += data[pos:]
                    return events
                head = data[pos:end + 4]
                pos = end + 4
                events.append(("head", head))
                mode, self._remaining = self._on_head(head)
                if mode == "none" or (mode == "length" and self._remaining == 0):
                    self._state = "done"
                else:
                    self._state = "chunk-size" if mode == "chunked" else mode
            elif self._state in ("length", "chunk-data"):
                take = min(self._remaining, size - pos)
                events.append(("body", data if take == size else data[pos:pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "done" if self._state == "length" else "chunk-size"
            elif self._state in ("chunk-size", "trailer"):
                end = data.find(b"\r\n", pos)
                if end < 0:
                    self._buffer += data[pos:]
                    return events
                line = data[pos:end + 2]
                pos = end + 2
                events.append(("body", line))
                if self._state == "trailer":
                    if line == b"\r\n":
                        self._state = "done"
                    continue
                size_text = line.split(b";", 1)[0].strip()
                if not size_text:
                    continue             # the CRLF that closes a chunk's data
                try:
                    chunk = int(size_text, 16)
                except ValueError as err:
                    raise BadMessage(f"bad chunk size {size_text!r}") from err
                if chunk == 0:
                    self._state = "trailer"
                else:
                    self._state, self._remaining = "chunk-data", chunk
            else:  # close: everything until the connection ends
                events.append(("body", data if pos == 0 else data[pos:]))
                pos = size


def _parse_head(head):
    """Return the start line's words and a dict of lower-cased header names to values."""
    lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return lines[0].split(b" ", 2), headers


def _body_mode(headers, otherwise):
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return "chunked", 0
    if b"content-length" in headers:
        return "length", int(headers[b"content-length"])
    return otherwise, 0


def _without_expect(head):
    lines = head[:-4].split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(b"expect:")]
    return b"\r\n".join(kept) + b"\r\n\r\n"


class Stats:
    """Counters for the whole process, printed on SIGUSR1."""

    requests = 0
    continues = 0
    mismatches = 0  # uploads whose checksum did not match their body (with --checksums)


CHECKSUMS = None  # a ChecksumStore, with --checksums


def _request_target(head):
    (method, target, *_), _ = _parse_head(head)
    path, _, query = target.decode("latin-1").partition("?")
    return method.decode("ascii"), path, query


def _header_pairs(head):
    return [(name.strip().decode("latin-1"), value.strip().decode("latin-1"))
            for name, value in (line.split(b":", 1) for line in head[:-4].split(b"\r\n")[1:] if b":" in line)]


def _with_headers(head, headers):
    start = head.split(b"\r\n", 1)[0]
    lines = [start] + [f"{name}: {value}".encode("latin-1") for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Downstream(asyncio.Protocol):
    """One client connection, and the upstream connection that serves it."""

    def __init__(self, upstream_address, latency_s):
        self._upstream_address = upstream_address
        self._latency_s = latency_s
        self._loop = asyncio.get_running_loop()
        self.transport = None
        self._upstream = None            # the Upstream protocol once connected
        self._early = []                 # what the client sent before that
        self._requests = _Framer(self._on_request_head)
        self._responses = _Framer(self._on_response_head)
        self._outgoing = []              # request bytes not yet forwarded
        self._outgoing_bytes = 0
        self._expects_continue = False   # the request head just framed asked for 100
        self._methods = deque()          # method of each request still awaiting its response
        self._arrived = deque()          # monotonic time each request finished arriving
        self._held = None                # response bytes waiting for their deadline
        self._deadline = 0.0
        self._held_bytes = 0
        self._upstream_closed = False
        # Why reading from upstream is paused: "held" (the held bytes passed the high-water
        # mark) and/or "client" (the client's socket buffer is full). Reading resumes only
        # when both have cleared, so a slow client bounds what this process holds.
        self._upstream_paused = set()
        self._upstream_full = False      # the server's socket buffer is full: client paused
        self._arrivals = deque()         # with --checksums: each request's Arrival, in order
        self._arriving = None            # the Arrival whose body is streaming in

    # -- client side -------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._loop.create_task(self._connect())

    async def _connect(self):
        host, port = self._upstream_address
        try:
            _, upstream = await self._loop.create_connection(lambda: Upstream(self), host, port)
        except OSError:
            self.transport.close()
            return
        if self.transport.is_closing():
            upstream.transport.close()
            return
        self._upstream = upstream
        if self._upstream_paused:
            upstream.transport.pause_reading()
        early, self._early = self._early, None
        for data in early:
            self.data_received(data)
        if not self._upstream_full:
            self.transport.resume_reading()

    def _flush_upstream(self):
        if not self._outgoing:
            return
        data = self._outgoing[0] if len(self._outgoing) == 1 else b"".join(self._outgoing)
        self._outgoing.clear()
        self._outgoing_bytes = 0
        self._upstream.transport.write(data)

    def data_received(self, data):
        if self._upstream is None:
            # The first bytes can beat the upstream connection (on the loopback it takes
            # well under 1 ms): keep them, and read no more until it is there. (Pausing in
            # connection_made would be neater, but uvloop ignores a pause made there.)
            self._early.append(data)
            self.transport.pause_reading()
            return
        try:
            events = self._requests.feed(data)
        except BadMessage:
            self.transport.close()
            return
        for kind, payload in events:
            if kind == "end":
                self._arrived.append(time.monotonic())
                if self._arriving is not None and self._arriving.verdict() is not None:
                    Stats.mismatches += 1
                self._arriving = None
                self._flush_upstream()
                continue
            if kind == "body" and self._arriving is not None:
                self._arriving.update(payload)
            if kind == "head" and self._expects_continue:
                self.transport.write(CONTINUE)
                Stats.continues += 1
                payload = _without_expect(payload)
            self._outgoing.append(payload)
            self._outgoing_bytes += len(payload)
        # A request is forwarded whole when small: a head sent ahead of its body would cost
        # the server (and this proxy) an extra wake-up per request.
        if self._outgoing_bytes > FLUSH_BYTES:
            self._flush_upstream()

    def _on_request_head(self, head):
        (method, *_), headers = _parse_head(head)
        self._methods.append(method)
        self._expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        Stats.requests += 1
        mode = _body_mode(headers, "none")
        if CHECKSUMS is not None:
            arrival = CHECKSUMS.begin(*_request_target(head), _header_pairs(head))
            self._arrivals.append(arrival)
            # Only a body sent with a Content-Length is hashed (a chunked one carries its
            # framing in the same events).
            self._arriving = arrival if mode[0] == "length" else None
        return mode

    def connection_lost(self, exc):
        if self._upstream is not None:
            self._upstream.transport.close()

    def pause_writing(self):
        self._pause_upstream("client")

    def resume_writing(self):
        self._resume_upstream("client")

    def upstream_full(self, full):
        """The server's socket buffer filled up (True) or drained (False)."""
        self._upstream_full = full
        if full:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _pause_upstream(self, reason):
        if not self._upstream_paused and self._upstream is not None:
            self._upstream.transport.pause_reading()
        self._upstream_paused.add(reason)

    def _resume_upstream(self, reason):
        if reason not in self._upstream_paused:
            return
        self._upstream_paused.discard(reason)
        if not self._upstream_paused and self._upstream is not None:
            self._upstream.transport.resume_reading()

    # -- upstream side ---------------------------------------------------------------------------

    def _on_response_head(self, head):
        (_, status, *_), headers = _parse_head(head)
        code = int(status)
        if code < 200:
            return "none", 0
        method = self._methods.popleft() if self._methods else b"GET"
        if code in (204, 304) or method == b"HEAD":
            return "none", 0
        return _body_mode(headers, "close")

    def upstream_data(self, data):
        try:
            events = self._responses.feed(data)
        except BadMessage:
            self.transport.close()
            return
        direct = []
        for kind, payload in events:
            if kind == "head":
                code = int(payload.split(b" ", 2)[1])
                if code == 100:
                    continue             # we already said Continue to the client ourselves
                if code >= 200 and self._arrivals:
                    arrival = self._arrivals.popleft()
                    payload = _with_headers(payload, arrival.answer_headers(code, _header_pairs(payload)))
                if code >= 200:
                    # An early answer to a request still arriving (an error, say) waits a
                    # full latency from now.
                    arrived = self._arrived.popleft() if self._arrived else time.monotonic()
                    delay = arrived + self._latency_s - time.monotonic()
                    if delay > 0 and self._held is None:
                        self._held, self._held_bytes = [], 0
                        self._deadline = arrived + self._latency_s
                        self._loop.call_later(delay, self._release)
            if kind == "end":
                continue
            if self._held is None:
                direct.append(payload)
            else:
                self._held.append(payload)
                self._held_bytes += len(payload)
        if direct:
            self.transport.write(direct[0] if len(direct) == 1 else b"".join(direct))
        if self._held is not None and self._held_bytes > HIGH_WATER_BYTES:
            self._pause_upstream("held")

    def _release(self):
        # The loop's clock is coarse (uvloop's is cached per iteration, in milliseconds), so
        # its timer can fire a little early: never let a response out before its deadline.
        early = self._deadline - time.monotonic()
        if early > 0:
            self._loop.call_later(early, self._release)
            return
        held, self._held = self._held, None
        if held and not self.transport.is_closing():
            self.transport.write(b"".join(held))
        self._resume_upstream("held")
        if self._upstream_closed:
            self.transport.close()

    def upstream_lost(self):
        self._upstream_closed = True
        if self._held is None:
            self.transport.close()


class Upstream(asyncio.Protocol):
    """The server side of a Downstream: hands everything to it."""

    def __init__(self, downstream):
        self.downstream = downstream
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.downstream.upstream_data(data)

    def connection_lost(self, exc):
        self.downstream.upstream_lost()

    def pause_writing(self):
        self.downstream.upstream_full(True)

    def resume_writing(self):
        self.downstream.upstream_full(False)


def _address(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _print_stats():
    print(f"stats requests={Stats.requests} continues={Stats.continues} mismatches={Stats.mismatches}",
          flush=True)


async def serve(listen, upstream, latency_s):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Downstream(upstream, latency_s), *listen, backlog=1024)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening {host}:{port} {type(loop).__module__.split('.')[0]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _print_stats)
    async with server:
        await stop.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 0),
                        help="HOST:PORT to listen on (default 127.0.0.1:0, any free port)")
    parser.add_argument("--upstream", type=_address, required=True, help="HOST:PORT of the server")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--checksums", action="store_true",
                        help="verify, keep and return checksums as S3 does (see above)")
    args = parser.parse_args(argv)
    if args.checksums:
        global CHECKSUMS
        from s3po.testing.checksumstore import ChecksumStore

        CHECKSUMS = ChecksumStore()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve(args.listen, args.upstream, args.latency_ms / 1000))


if __name__ == "__main__":
    main()
