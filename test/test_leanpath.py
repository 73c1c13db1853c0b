"""The lean request path against botocore, side by side.

Requests: for a table of calls (every lean operation; tricky keys; metadata, content
type and encoding, storage class, ACL, tagging, SSE-S3 and SSE-KMS headers, Range,
If-Match, a session token; path and virtual-hosted addressing; us-east-1, another
region, a custom endpoint), the lean path builds the same method, URL, signed headers
and Authorization as botocore's own request for the same call, with a frozen clock.

Answers: the same wire answers give the same records and the same exceptions on both
paths (a canned server answers both). Credentials that rotate mid-batch never sign a
request after they expired.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import socket
import sys
import threading
import time

import botocore.auth
import pytest
from botocore.config import Config
from s3po_fixtures import BUCKET, make_connection

import s3po
from s3po.leanpath import LeanPath

FROZEN = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
BODY = b"hello, world"
MD5 = base64.b64encode(hashlib.md5(BODY).digest()).decode()

KEYS = ["plain.txt", "a b", "a+b", "100%", "tilde~", "double//slash", "caf\u00e9/\u65e5\u672c", "/leading",
        "trailing/", "sub/dir/file.json", "!'()*;:@&=$,?#[]"]

CALLS = {
    "put": ("put_object", {"Body": BODY, "ContentMD5": MD5}),
    "put with headers": ("put_object", {
        "Body": BODY, "ContentMD5": MD5, "ContentType": "text/plain; charset=utf-8",
        "ContentEncoding": "gzip", "ContentDisposition": 'attachment; filename="x.txt"',
        "ContentLanguage": "en", "CacheControl": "max-age=60", "StorageClass": "STANDARD_IA",
        "ACL": "bucket-owner-full-control", "Tagging": "team=data&tier=hot",
        "Metadata": {"Owner": "alice", "x-run": "42"}}),
    "put sse-s3": ("put_object", {"Body": BODY, "ContentMD5": MD5, "ServerSideEncryption": "AES256"}),
    "put sse-kms": ("put_object", {"Body": BODY, "ContentMD5": MD5, "ServerSideEncryption": "aws:kms",
                                   "SSEKMSKeyId": "arn:aws:kms:eu-west-1:111122223333:key/abcd"}),
    "upload part": ("upload_part", {"Body": BODY, "ContentMD5": MD5, "PartNumber": 7,
                                    "UploadId": "VXBsb2FkIElE+/=.-_~"}),
    "put crc64nvme": ("put_object", {"Body": BODY, "ChecksumCRC64NVME": "AAAAAAAAAAA="}),
    "put crc32c and md5": ("put_object", {"Body": BODY, "ContentMD5": MD5, "ChecksumCRC32C": "AAAAAA=="}),
    "upload part crc32": ("upload_part", {"Body": BODY, "ChecksumCRC32": "AAAAAA==", "PartNumber": 2,
                                          "UploadId": "abc"}),
    "get": ("get_object", {}),
    "get checksum mode": ("get_object", {"ChecksumMode": "ENABLED"}),
    "head checksum mode": ("head_object", {"ChecksumMode": "ENABLED"}),
    "get range if-match": ("get_object", {"Range": "bytes=0-1023", "IfMatch": '"0123456789abcdef0123456789abcdef"'}),
    "head": ("head_object", {}),
    "head part": ("head_object", {"PartNumber": 1}),
    "delete": ("delete_object", {}),
    "delete version": ("delete_object", {"VersionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"}),
}

PLACES = {
    "custom endpoint, path style": dict(endpoint_url="http://127.0.0.1:9000", region_name="us-east-1"),
    "custom https endpoint, virtual hosts": dict(endpoint_url="https://minio.example.com", region_name="eu-west-1",
                                                 config=Config(s3={"addressing_style": "virtual"})),
    "aws us-east-1": dict(region_name="us-east-1"),
    "aws eu-west-1": dict(region_name="eu-west-1"),
    "aws eu-west-1, path style": dict(region_name="eu-west-1", config=Config(s3={"addressing_style": "path"})),
}

BUCKETS = {"plain": "s3po-lean-test", "dotted": "s3po.lean.test"}


class _Stop(Exception):
    pass


def _botocore_request(connection, operation, params, monkeypatch):
    """The request botocore's own client sends for this call (stopped before it goes out)."""
    def frozen(remove_tzinfo=True):
        return FROZEN.replace(tzinfo=None) if remove_tzinfo else FROZEN

    monkeypatch.setattr(botocore.auth, "get_current_datetime", frozen)
    if "botocore.crt.auth" in sys.modules:  # with awscrt installed, botocore signs with it
        monkeypatch.setattr(sys.modules["botocore.crt.auth"], "get_current_datetime", frozen)
    captured = {}

    def stop(request, **kwargs):
        captured["request"] = request
        raise _Stop()

    events = connection.client.meta.events
    events.register("before-send.s3", stop)
    try:
        with pytest.raises(_Stop):
            getattr(connection.client, operation)(**params)
    finally:
        events.unregister("before-send.s3", stop)
    return captured["request"]


def _url(url):
    """A URL as sent: all but the query to the letter, and the query's encoded parameters
    (botocore's order among them varies with the endpoint; the signature sorts them)."""
    base, _, query = url.partition("?")
    return base, sorted(query.split("&")) if query else []


def _signed(headers):
    """The signed headers (lower-case names) and the Authorization of a request."""
    text = {name.lower(): (value.decode() if isinstance(value, bytes) else value) for name, value in headers.items()}
    authorization = text["authorization"]
    names = authorization.partition("SignedHeaders=")[2].partition(",")[0].split(";")
    return {name: text[name] for name in names if name != "host"}, authorization


@functools.lru_cache(maxsize=None)
def _cached_connections(place):
    return _connections(place)


def _connections(place, **extra):
    options = dict(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
                   aws_session_token="FwoGZXIvYXdzEJr//////////wEaDH", **PLACES[place], **extra)
    return s3po.Connection(request_path="lean", **options), s3po.Connection(request_path="botocore", **options)


@pytest.mark.parametrize("bucket", sorted(BUCKETS))
@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("call", sorted(CALLS))
def test_the_lean_path_signs_every_call_as_botocore_does(monkeypatch, place, call, bucket):
    lean_conn, boto_conn = _cached_connections(place)
    lean_conn.client  # built, and with it the lean path
    lean: LeanPath = lean_conn._lean
    operation, extra = CALLS[call]
    for key in KEYS:
        params = {"Bucket": BUCKETS[bucket], "Key": key, **extra}
        assert lean.serves(operation, params), (operation, params)
        ours = lean.build(operation, params, now=FROZEN)
        theirs = _botocore_request(boto_conn, operation, params, monkeypatch)
        assert (ours.method, *_url(ours.url)) == (theirs.method, *_url(theirs.url)), key
        assert _signed(ours.headers) == _signed(theirs.headers), key


def test_payload_signing_follows_the_clients_config(monkeypatch):
    for signing in (True, False):
        lean_conn, boto_conn = _connections("custom endpoint, path style",
                                            config=Config(s3={"payload_signing_enabled": signing}))
        lean_conn.client  # built
        params = {"Bucket": "s3po-lean-test", "Key": "k", **CALLS["put"][1]}
        ours = lean_conn._lean.build("put_object", params, now=FROZEN)
        theirs = _botocore_request(boto_conn, "put_object", params, monkeypatch)
        assert _signed(ours.headers) == _signed(theirs.headers)
        assert (ours.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD") is (not signing)


@pytest.mark.parametrize("why, options", [
    ("signature version 2", dict(config=Config(signature_version="s3"))),
    ("unsigned", dict(config=Config(signature_version=botocore.UNSIGNED))),
    ("checksums when supported", dict(config=Config(request_checksum_calculation="when_supported"))),
    ("a proxy", dict(config=Config(proxies={"http": "http://127.0.0.1:3128"}))),
])
def test_what_the_lean_path_cannot_reproduce_goes_through_botocore(why, options):
    conn = s3po.Connection(endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
                           aws_access_key_id="a", aws_secret_access_key="b", **options)
    conn.client  # built
    assert not conn._lean.serves("get_object", {"Bucket": "bkt", "Key": "k"}), why
    assert conn._lean.unavailable


def test_per_request_and_per_bucket_fallbacks():
    conn = s3po.Connection(endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
                           aws_access_key_id="a", aws_secret_access_key="b")
    conn.client  # built
    lean = conn._lean
    assert lean.serves("put_object", {"Bucket": "bkt", "Key": "k", "Body": b"x", "ContentMD5": "m"})
    assert not lean.serves("put_object", {"Bucket": "bkt", "Key": "k", "Body": b"x", "Expires": "soon"})
    assert not lean.serves("put_object", {"Bucket": "bkt", "Key": "k", "Body": b"x", "Metadata": {"a": "\u00e9"}})
    assert not lean.serves("put_object", {"Bucket": "bkt", "Key": "k", "Body": b"x" * (9 * 1024 * 1024)})
    assert not lean.serves("get_object", {"Bucket": "bkt", "Key": "k", "SSECustomerKey": "x"})
    assert not lean.serves("get_object", {"Bucket": "express--use1-az4--x-s3", "Key": "k"})
    assert not lean.serves("list_objects_v2", {"Bucket": "bkt"})
    # ARNs (Object Lambda signs for another service; Outposts, Multi-Region Access Points...).
    for arn in ("arn:aws:s3-object-lambda:us-west-2:123456789012:accesspoint/olap",
                "arn:aws:s3:us-west-2:123456789012:accesspoint/ap"):
        assert not lean.serves("get_object", {"Bucket": arn, "Key": "k"})
    # A handler the program registers on the client sees every request from then on.
    conn.client.meta.events.register("before-send.s3", lambda **kwargs: None)
    assert not lean.serves("get_object", {"Bucket": "bkt", "Key": "k"})
    assert s3po.Connection(request_path="botocore", region_name="us-east-1")._lean is None


# -- the same wire answers, the same results ------------------------------------------------


class CannedServer:
    """An HTTP/1.1 server on 127.0.0.1 answering each request with the next canned answer."""

    def __init__(self):
        self.answers = []
        self.requests = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer_all, args=(client,), daemon=True).start()

    def _answer_all(self, client):
        reader = client.makefile("rb")
        with client:
            while True:
                line = reader.readline()
                if not line:
                    return
                method = line.split()[0].decode()
                length = 0
                while True:
                    header = reader.readline()
                    if header in (b"\r\n", b""):
                        break
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                reader.read(length)
                self.requests.append(line.decode().strip())
                status, headers, body = self.answers.pop(0)
                lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in headers.items()),
                         f"Content-Length: {len(body)}", "Date: " + FIXED_DATE]
                client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body))

    def close(self):
        self._listener.close()


@pytest.fixture
def canned():
    server = CannedServer()
    yield server
    server.close()


# One Date for every canned answer: a record made from an answer without Last-Modified
# takes the answer's Date, and both paths must see the same one.
FIXED_DATE = "Tue, 01 Dec 2026 11:12:31 GMT"


def _error_body(code, message="the message"):
    return (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>R1</RequestId></Error>").encode()


OBJECT_HEADERS = {
    "ETag": '"' + hashlib.md5(BODY).hexdigest() + '"', "Last-Modified": "Tue, 01 Dec 2026 11:12:31 GMT",
    "Content-Type": "text/plain", "Content-Encoding": "identity", "x-amz-meta-owner": "alice",
    "x-amz-version-id": "v1", "x-amz-storage-class": "STANDARD_IA", "x-amz-server-side-encryption": "AES256",
    "Accept-Ranges": "bytes",
}

ANSWERS = {
    "head": (lambda conn: conn.head("bkt", "k"), [(200, OBJECT_HEADERS, BODY)]),
    "download": (lambda conn: conn.download("bkt", "k"), [(200, OBJECT_HEADERS, BODY)]),
    "upload": (lambda conn: conn.upload("bkt", "k", BODY, retries=0),
               [(200, {"ETag": OBJECT_HEADERS["ETag"], "x-amz-version-id": "v2"}, b"")]),
    "missing key": (lambda conn: conn.download("bkt", "k", retries=0), [(404, {}, _error_body("NoSuchKey"))]),
    "access denied": (lambda conn: conn.download("bkt", "k", retries=0), [(403, {}, _error_body("AccessDenied"))]),
    "slow down": (lambda conn: conn.upload("bkt", "k", BODY, retries=0), [(503, {}, _error_body("SlowDown"))]),
    "empty 500": (lambda conn: conn.delete("bkt", "k", retries=0), [(500, {}, b"")]),
    "head of a missing key": (lambda conn: conn.head("bkt", "k", retries=0), [(404, {}, b""), (200, {}, b"")]),
    "head of a missing bucket": (lambda conn: conn.head("bkt", "k", retries=0), [(404, {}, b""), (404, {}, b"")]),
    "not html": (lambda conn: conn.download("bkt", "k", retries=0), [(502, {"Content-Type": "text/html"},
                                                                      b"<html>bad gateway</html>")]),
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_the_same_answers_give_the_same_results_on_both_paths(canned, answer):
    call, answers = ANSWERS[answer]
    outcomes = []
    for path in ("lean", "botocore"):
        conn = make_connection(canned.url, request_path=path, verify_etag=False)
        conn.client  # built (its route probe never reaches the server)
        canned.answers[:] = list(answers)
        try:
            outcomes.append(("ok", call(conn)))
        except s3po.S3POException as exc:
            outcomes.append(("error", type(exc), exc.code, str(exc)))
        assert canned.answers == [], f"{path}: {len(canned.answers)} answer(s) left"
    assert outcomes[0] == outcomes[1]


# -- credentials that rotate -------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http"])
def test_rotating_credentials_never_sign_a_request_after_they_expired(proxy):
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    issued = []

    def refresh():
        number = len(issued)
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1.5)
        issued.append((f"AKIDROTATE{number:04d}", expiry))
        return {"access_key": f"AKIDROTATE{number:04d}", "secret_key": f"secret{number}",
                "token": f"token{number}", "expiry_time": expiry.isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "rotating-test")
    # Refreshed when less than a second is left; refused (refreshed at once) below half a second.
    credentials._advisory_refresh_timeout = 1.0
    credentials._mandatory_refresh_timeout = 0.5
    core = botocore.session.get_session()
    core._credentials = credentials
    session = boto3.session.Session(botocore_session=core, region_name="us-east-1")
    conn = s3po.Connection(session, endpoint_url=proxy.url, max_connections=16, backoff_base_s=0.0)
    conn.create_bucket(BUCKET)
    proxy.latency_s = 0.1
    started = time.monotonic()
    with conn.batch(16, raise_errors=True) as batch:
        for n in range(400):
            batch.upload(BUCKET, f"k{n}", b"x")
    assert time.monotonic() - started > 2  # long enough for several rotations
    assert len(issued) >= 3
    expiries = dict(issued)
    signed_by = set()
    for record in proxy.requests:
        access_key = record.headers["Authorization"].partition("Credential=")[2].partition("/")[0]
        signed_at = datetime.datetime.strptime(record.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        assert signed_at <= expiries[access_key], (access_key, signed_at, expiries[access_key])
        assert record.headers["X-Amz-Security-Token"] == f"token{int(access_key[-4:])}"
        signed_by.add(access_key)
    assert len(signed_by) >= 3


def test_a_signed_request_and_a_signing_key_keep_their_secrets_out_of_their_reprs():
    from s3po import sigv4
    from s3po.httppool import Endpoint
    from s3po.leanpath import Request

    request = Request(Endpoint("http", "h"), "GET", "/b/k",
                      {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=sig",
                       "X-Amz-Security-Token": "token-secret"}, b"")
    assert "Signature" not in repr(request) and "token-secret" not in repr(request)
    assert "the-secret" not in repr(sigv4._Key("the-secret", "20261201", "us-east-1"))
