"""Tests of the test infrastructure: the fault proxy (and the moto server behind it).

Most tests drive plain boto3 through the proxy to moto, the way s3po's own
tests will, over HTTP and over HTTPS (the `scheme` fixture). A few speak raw
HTTP to a small echo server instead, to see exactly what the proxy forwards
and to cover framings moto never sends.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import http.server
import io
import json
import os
import socket
import threading
import time
import urllib.parse

import boto3
import botocore.config
import botocore.exceptions
import pytest

from faultproxy import FaultProxy
from s3server import free_port
from tlsca import http_connection, tls_options

BUCKET = "faultproxy-test"
KEY = "some/key.bin"
MiB = 1024 * 1024

# One attempt only, so a fault shows up as exactly one request; checksums
# only when an operation demands them, so flipped bytes reach the test.
SINGLE_ATTEMPT = botocore.config.Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
)


def make_client(endpoint_url: str, config: botocore.config.Config = SINGLE_ATTEMPT, **kwargs):
    """A boto3 S3 client; for an https endpoint it trusts the session CA unless given `verify`."""
    options = {**tls_options(endpoint_url), **kwargs}
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
        **options,
    )


@pytest.fixture
def s3(fault_proxy):
    return make_client(fault_proxy.url)


@pytest.fixture
def bucket(s3, fault_proxy) -> str:
    """An empty bucket; the proxy's log starts after its creation."""
    s3.create_bucket(Bucket=BUCKET)
    fault_proxy.clear()
    return BUCKET


@pytest.fixture
def stored(s3, bucket, fault_proxy) -> bytes:
    """The bytes stored at BUCKET/KEY (1000 distinct-enough bytes); the log starts after."""
    data = bytes(range(250)) * 4
    s3.put_object(Bucket=bucket, Key=KEY, Body=data)
    fault_proxy.clear()
    return data


def differing_offsets(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


# -- pass-through -------------------------------------------------------------


def test_put_get_head_list_pass_through(s3, bucket, fault_proxy):
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"hello")

    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"hello"
    assert s3.head_object(Bucket=bucket, Key=KEY)["ContentLength"] == 5
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [obj["Key"] for obj in listed["Contents"]] == [KEY]

    records = fault_proxy.requests
    assert [(r.method, r.status, r.fault) for r in records] == [
        ("PUT", 200, None),
        ("GET", 200, None),
        ("HEAD", 200, None),
        ("GET", 200, None),
    ]
    assert records[0].path == f"/{bucket}/{KEY}" and records[0].body_length == 5
    assert "list-type=2" in records[3].query
    # The Host header botocore signed is the proxy's, and reaches moto as is.
    assert records[0].headers["host"] == f"{fault_proxy.host}:{fault_proxy.port}"


def test_file_like_put_is_not_stalled_by_expect_100_continue(s3, bucket, fault_proxy):
    # botocore sends `Expect: 100-continue` for any file-like body and waits up
    # to a second for the 100 before sending it; the proxy must answer at once.
    timings = []
    for attempt in range(3):
        started = time.monotonic()
        s3.put_object(Bucket=bucket, Key=KEY, Body=io.BytesIO(b"x" * 1000))
        timings.append(time.monotonic() - started)

    assert min(timings) < 0.8, timings
    assert max(timings) < 0.8, timings
    record = fault_proxy.requests[-1]
    assert record.headers["expect"] == "100-continue"
    assert record.body_length == 1000
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"x" * 1000


def test_large_bodies_stream_through(s3, bucket):
    data = os.urandom(16 * MiB)
    started = time.monotonic()
    s3.put_object(Bucket=bucket, Key=KEY, Body=io.BytesIO(data))
    got = s3.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    elapsed = time.monotonic() - started

    assert hashlib.md5(got).digest() == hashlib.md5(data).digest()
    assert elapsed < 5.0


# -- faults -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params, code, status",
    [
        ({}, "SlowDown", 503),
        ({"status": 500}, "InternalError", 500),
        ({"status": 403, "code": "AccessDenied"}, "AccessDenied", 403),
    ],
)
def test_status_fault_answers_an_s3_error(s3, stored, fault_proxy, params, code, status):
    fault_proxy.add_fault("status", **params)

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.get_object(Bucket=BUCKET, Key=KEY)

    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert fault_proxy.count() == 1
    assert fault_proxy.requests[0].status == status
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == stored


def test_status_fault_consumes_the_request_body(s3, bucket, fault_proxy):
    fault_proxy.add_fault("status", method="PUT")

    with pytest.raises(botocore.exceptions.ClientError):
        s3.put_object(Bucket=bucket, Key=KEY, Body=io.BytesIO(b"y" * 5000))
    # Had the body been left unread, the next request on the kept-alive
    # connection would be parsed from the middle of it.
    s3.put_object(Bucket=bucket, Key=KEY, Body=io.BytesIO(b"z" * 5000))

    assert [r.body_length for r in fault_proxy.requests] == [5000, 5000]
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"z" * 5000


def test_reset_fault_breaks_the_connection(s3, stored, fault_proxy):
    fault_proxy.add_fault("reset")

    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        s3.get_object(Bucket=BUCKET, Key=KEY)

    assert fault_proxy.count() == 1
    assert fault_proxy.requests[0].status is None
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == stored


@pytest.mark.parametrize(
    "kind, params",
    [
        ("truncate", {}),
        ("truncate", {"keep": 10, "close": "rst"}),
        ("drop_after_headers", {}),
        ("drop_after_headers", {"close": "rst"}),
    ],
)
def test_truncated_body_fails_the_read(s3, stored, fault_proxy, kind, params):
    fault_proxy.add_fault(kind, **params)

    response = s3.get_object(Bucket=BUCKET, Key=KEY)  # the headers are intact
    assert response["ContentLength"] == len(stored)
    with pytest.raises(
        (botocore.exceptions.IncompleteReadError, botocore.exceptions.ResponseStreamingError)
    ):
        response["Body"].read()


@pytest.mark.parametrize("params, offset", [({}, 500), ({"offset": 3}, 3)])
def test_flip_corrupts_one_byte_of_the_response(s3, stored, fault_proxy, params, offset):
    fault_proxy.add_fault("flip", **params)

    got = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()

    assert differing_offsets(got, stored) == [offset]
    assert got[offset] == stored[offset] ^ 0xFF


def test_flip_request_stores_a_corrupted_object(s3, bucket, fault_proxy):
    data = os.urandom(1000)
    fault_proxy.add_fault("flip_request", method="PUT")

    etag = s3.put_object(Bucket=bucket, Key=KEY, Body=data)["ETag"].strip('"')

    assert etag != hashlib.md5(data).hexdigest()
    got = s3.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert differing_offsets(got, data) == [500]
    assert etag == hashlib.md5(got).hexdigest()


def test_delay_fault_and_latency_delay_the_answer(s3, stored, fault_proxy):
    fault_proxy.add_fault("delay", method="HEAD", seconds=0.3)
    started = time.monotonic()
    s3.head_object(Bucket=BUCKET, Key=KEY)
    assert time.monotonic() - started >= 0.3

    fault_proxy.latency_s = 0.2
    started = time.monotonic()
    s3.head_object(Bucket=BUCKET, Key=KEY)
    assert time.monotonic() - started >= 0.2

    fault_proxy.clear()
    assert fault_proxy.latency_s == 0.0


def test_a_store_that_ignores_a_request_header_and_sends_etags_of_its_own(s3, stored, fault_proxy):
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket=BUCKET, Key=KEY, IfMatch='"not-the-etag"')
    fault_proxy.ignored_request_headers = {"if-match"}
    assert s3.get_object(Bucket=BUCKET, Key=KEY, IfMatch='"not-the-etag"')["Body"].read()
    fault_proxy.response_headers = {"ETag": '"0123456789abcdef0123456789abcdef"'}
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"] == '"0123456789abcdef0123456789abcdef"'
    fault_proxy.clear()
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"] != '"0123456789abcdef0123456789abcdef"'
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket=BUCKET, Key=KEY, IfMatch='"not-the-etag"')


def test_counted_fault_is_used_up(s3, stored, fault_proxy):
    fault = fault_proxy.add_fault("status", count=2, method="GET")

    for attempt in range(2):
        with pytest.raises(botocore.exceptions.ClientError):
            s3.get_object(Bucket=BUCKET, Key=KEY)
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == stored

    assert fault.remaining == 0
    assert fault_proxy.faults == []
    assert [r.fault for r in fault_proxy.requests] == ["status", "status", None]


def test_faults_apply_only_to_matching_requests_first_added_first(s3, stored, fault_proxy):
    fault_proxy.add_fault("status", method="PUT")
    fault_proxy.add_fault("status", path_contains="/other-key")
    fault_proxy.add_fault("status", query_contains="list-type=2", status=500)
    fault_proxy.add_fault("status", method="GET", status=500, code="First")
    fault_proxy.add_fault("status", method="GET", status=500, code="Second")

    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"] == len(stored)
    codes = []
    for call in (
        lambda: s3.list_objects_v2(Bucket=BUCKET),
        lambda: s3.get_object(Bucket=BUCKET, Key=KEY),
        lambda: s3.get_object(Bucket=BUCKET, Key=KEY),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call()
        codes.append(caught.value.response["Error"]["Code"])

    assert codes == ["InternalError", "First", "Second"]
    assert [(f.method, f.path_contains) for f in fault_proxy.faults] == [
        ("PUT", None),
        (None, "/other-key"),
    ]


@pytest.mark.parametrize(
    "kind, count, params, error",
    [
        ("explode", 1, {}, ValueError),
        ("reset", 0, {}, ValueError),
        ("status", 1, {"keep": 3}, TypeError),
        ("status", 1, {"status": 200}, ValueError),
        ("truncate", 1, {"close": "gently"}, ValueError),
        ("flip", 1, {"offset": -1}, ValueError),
        ("delay", 1, {}, ValueError),
    ],
)
def test_add_fault_rejects_bad_arguments(fault_proxy, kind, count, params, error):
    with pytest.raises(error):
        fault_proxy.add_fault(kind, count, **params)
    assert fault_proxy.faults == []


# -- concurrency and lifecycle ------------------------------------------------


def test_concurrent_requests_are_delayed_concurrently(fault_proxy, stored):
    pooled = SINGLE_ATTEMPT.merge(botocore.config.Config(max_pool_connections=20))
    s3 = make_client(fault_proxy.url, pooled)
    fault_proxy.latency_s = 0.2

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        bodies = list(
            pool.map(lambda _: s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read(), range(20))
        )
    elapsed = time.monotonic() - started

    assert bodies == [stored] * 20
    assert elapsed < 2.0, f"20 requests at 0.2 s took {elapsed:.2f} s: serialized?"
    assert fault_proxy.count(method="GET", path_contains=KEY) == 20


def test_sixty_simultaneous_connections(fault_proxy, s3, stored):
    presigned = urllib.parse.urlsplit(
        s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": KEY})
    )
    path = f"{presigned.path}?{presigned.query}"
    fault_proxy.latency_s = 0.2  # keeps every connection busy at the same moment
    connections = [http_connection(fault_proxy.url, timeout=10) for _ in range(60)]
    for connection in connections:
        connection.connect()

    def fetch(connection: http.client.HTTPConnection) -> tuple[int, bytes]:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=60) as pool:
            results = list(pool.map(fetch, connections))
    finally:
        for connection in connections:
            connection.close()

    assert results == [(200, stored)] * 60


def test_stop_cuts_live_connections_and_frees_the_port(moto_server, scheme, tls_ca):
    tls = tls_ca.server_context() if scheme == "https" else None
    proxy = FaultProxy(moto_server.host, moto_server.port, tls=tls).start()
    address = (proxy.host, proxy.port)
    connection = http_connection(proxy.url, timeout=5)
    connection.request("GET", "/moto-api/config")
    assert connection.getresponse().read()  # kept alive: the proxy thread now waits on it

    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 1.0

    assert connection.sock.recv(1) == b""  # the proxy closed its end
    connection.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=1)


def test_unreachable_upstream_is_a_502():
    with FaultProxy("127.0.0.1", free_port()) as proxy:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            make_client(proxy.url).list_buckets()
    assert caught.value.response["Error"]["Code"] == "BadGateway"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502


def test_moto_server_reset_wipes_everything(moto_server, server_url):
    s3 = make_client(server_url)
    s3.create_bucket(Bucket=BUCKET)
    moto_server.reset()
    assert s3.list_buckets()["Buckets"] == []
    os.kill(moto_server.pid, 0)  # the process is there to be measured


# -- TLS ----------------------------------------------------------------------

https_only = pytest.mark.parametrize("scheme", ["https"])


@https_only
def test_https_is_served_to_a_client_trusting_the_ca_and_forwarded_as_http(fault_proxy):
    assert fault_proxy.url.startswith("https://127.0.0.1:")
    connection = http_connection(fault_proxy.url, timeout=5)
    connection.request("GET", "/moto-api/config")
    response = connection.getresponse()

    assert "batch" in json.loads(response.read())  # moto's config: moto understood it
    assert connection.sock.version().startswith("TLS")
    connection.close()
    assert [(r.method, r.path, r.status) for r in fault_proxy.requests] == [
        ("GET", "/moto-api/config", response.status)
    ]


@https_only
def test_a_client_not_trusting_the_ca_fails_verification(fault_proxy, s3):
    untrusting = make_client(fault_proxy.url, verify=True)  # the default trust store only

    with pytest.raises(botocore.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.list_buckets()

    assert fault_proxy.requests == []
    s3.list_buckets()  # the failed handshake cost the proxy nothing


@https_only
def test_a_stalled_handshake_does_not_hold_up_other_clients(fault_proxy, s3):
    with socket.create_connection((fault_proxy.host, fault_proxy.port)) as silent:
        silent.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        started = time.monotonic()
        s3.list_buckets()
        assert time.monotonic() - started < 2.0


@https_only
def test_reset_over_tls_is_a_tcp_reset(fault_proxy, tls_ca):
    fault_proxy.add_fault("reset")
    raw = socket.create_connection((fault_proxy.host, fault_proxy.port), timeout=5)
    with tls_ca.client_context().wrap_socket(raw, server_hostname=fault_proxy.host) as tls:
        tls.sendall(b"GET /moto-api/config HTTP/1.1\r\nHost: x\r\n\r\n")
        # Read beneath TLS: Python's ssl reports a reset as a (suppressed) unexpected
        # EOF, so only the socket itself tells a RST from a FIN.
        with pytest.raises(ConnectionResetError):
            while socket.socket.recv(tls, 65536):  # TLS records (session tickets) first
                pass
    assert [(r.fault, r.status) for r in fault_proxy.requests] == [("reset", None)]


# -- raw HTTP against an echo server ------------------------------------------


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers according to the path, so the proxy meets every response framing."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._answer()

    def do_HEAD(self):
        self._answer()

    def do_PUT(self):
        self._answer()

    def _answer(self):
        body = self._read_request_body()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"first ", b"second ", b"third"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif self.path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"no length, ends at close")
            self.close_connection = True
        elif self.path == "/no-content":
            self.send_response(204)
            self.send_header("Content-Length", "5")  # wrong, and must be ignored
            self.end_headers()
        else:
            echo = json.dumps(
                {"headers": list(self.headers.items()), "body": body.decode("latin-1")}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(echo)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(echo)

    def _read_request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return b"".join(pieces)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def log_message(self, *args):
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def echo_proxy():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with FaultProxy(*server.server_address[:2]) as proxy:
            yield proxy
    finally:
        server.shutdown()
        server.server_close()


def test_headers_reach_upstream_unchanged_but_expect(echo_proxy):
    connection = http.client.HTTPConnection(echo_proxy.host, echo_proxy.port, timeout=5)
    headers = {
        "Host": "bucket.example.test:1234",
        "X-Amz-Meta-Odd_Case": "a  b",
        "Expect": "100-continue",
    }
    connection.request("PUT", "/echo?x=1", body=b"payload", headers=headers)
    echo = json.loads(connection.getresponse().read())
    connection.close()

    forwarded = dict(echo["headers"])
    assert forwarded["Host"] == "bucket.example.test:1234"
    assert forwarded["X-Amz-Meta-Odd_Case"] == "a  b"
    assert "Expect" not in forwarded
    assert echo["body"] == "payload"


def test_proxy_answers_100_continue_itself(echo_proxy):
    with socket.create_connection((echo_proxy.host, echo_proxy.port), timeout=2) as sock:
        sock.sendall(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert json.loads(response.read())["body"] == "body"


def test_one_connection_carries_every_framing(echo_proxy):
    connection = http.client.HTTPConnection(echo_proxy.host, echo_proxy.port, timeout=5)
    connection.connect()
    local_port = connection.sock.getsockname()[1]

    def exchange(method, path, **kwargs):
        connection.request(method, path, **kwargs)
        response = connection.getresponse()
        return response, response.read()

    response, body = exchange("PUT", "/echo", body=iter([b"chu", b"nked"]), encode_chunked=True)
    assert json.loads(body)["body"] == "chunked"
    response, body = exchange("GET", "/chunked")
    assert body == b"first second third"
    response, body = exchange("HEAD", "/echo")
    assert body == b"" and int(response.headers["Content-Length"]) > 0
    response, body = exchange("GET", "/no-content")
    assert response.status == 204 and body == b""
    # Every answer so far kept the connection: it is still the first one.
    assert connection.sock.getsockname()[1] == local_port
    assert response.headers["Connection"] is None

    response, body = exchange("GET", "/until-close")
    assert body == b"no length, ends at close"
    assert response.headers["Connection"] == "close"
    connection.close()
