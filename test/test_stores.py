"""Stores that are not quite S3: ETags of their own, If-Match ignored, TLS that hiccups.

Each store is simulated by the fault proxy in front of moto's server, over the wire.
"""

from __future__ import annotations

import os

import pytest
from s3po_fixtures import BUCKET, SMALL_PARTS, MiB, make_connection

import s3po

DATA = os.urandom(200_000)
NOT_AN_MD5 = '"0123456789abcdef0123456789abcdef"'


# -- a store whose ETags look like MD5s but are not --------------------------------------


@pytest.mark.parametrize("how", ["memory", "file", "file object", "stream"])
def test_verify_etag_false_governs_downloads_too(wire_conn, proxy, tmp_path, how):
    wire_conn.upload(BUCKET, "k", DATA)
    proxy.clear()
    proxy.response_headers = {"ETag": NOT_AN_MD5}

    def fetch(conn):
        if how == "memory":
            return conn.download(BUCKET, "k")
        if how == "file":
            conn.download_file(BUCKET, "k", str(tmp_path / "out"))
            return (tmp_path / "out").read_bytes()
        if how == "file object":
            import io

            sink = io.BytesIO()
            conn.download(BUCKET, "k", sink)
            return sink.getvalue()
        with conn.open(BUCKET, "k") as stream:
            return stream.read()

    with pytest.raises(s3po.DownloadException, match="ETag"):
        fetch(wire_conn)
    proxy.clear()
    proxy.response_headers = {"ETag": NOT_AN_MD5}
    proxy.ignored_request_headers = {"If-Match"}  # such a store compares If-Match with its own ETags
    trusting = make_connection(proxy.url, verify_etag=False)
    assert fetch(trusting) == DATA
    assert proxy.count("GET") == 1  # nothing failed, nothing was asked twice


def test_verify_etag_false_governs_uploads(wire_conn, proxy):
    proxy.response_headers = {"ETag": NOT_AN_MD5}
    with pytest.raises(s3po.UploadException, match="ETag"):
        wire_conn.upload(BUCKET, "k", DATA, retries=1)
    proxy.clear()
    proxy.response_headers = {"ETag": NOT_AN_MD5}
    key = make_connection(proxy.url, verify_etag=False).upload(BUCKET, "k", DATA)
    assert key.etag == NOT_AN_MD5.strip('"')
    assert proxy.count("PUT") == 1


# -- a store that ignores If-Match --------------------------------------------------------


OLD = os.urandom(16 * MiB + 3)
NEW = os.urandom(16 * MiB + 3)


def test_a_store_that_ignores_if_match_cannot_splice_two_versions(proxy, moto_server, tmp_path):
    conn = make_connection(proxy.url, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    conn.upload(BUCKET, "big", OLD)
    proxy.clear()
    proxy.ignored_request_headers = {"If-Match"}
    # Ranges reach the server a second late: time for another writer to replace the object.
    proxy.add_fault("hold", count=100, method="GET", header_contains=("If-Match", '"'), seconds=1.0)
    writer = make_connection(moto_server.url, **SMALL_PARTS)
    replaced = []

    def progress(done, total):
        if done and not replaced:
            replaced.append(True)
            writer.upload(BUCKET, "big", NEW)

    target = tmp_path / "out.bin"
    conn.download_file(BUCKET, "big", str(target), progress=progress)
    # The answers' ETags told the change; the download started once more, from the new version.
    assert target.read_bytes() == NEW
    gets = proxy.count("GET")
    assert gets <= 2 * 4, gets  # one restart, not a re-fetch until the retries run out


def test_a_stream_refuses_bytes_of_another_version_from_a_store_that_ignores_if_match(
        wire_conn, proxy, moto_server):
    wire_conn.upload(BUCKET, "s", DATA)
    proxy.clear()
    proxy.ignored_request_headers = {"If-Match"}
    proxy.add_fault("truncate", count=1, method="GET", keep=50_000)
    with wire_conn.open(BUCKET, "s") as stream:
        assert stream.read(40_000) == DATA[:40_000]
        make_connection(moto_server.url).upload(BUCKET, "s", os.urandom(len(DATA)))
        with pytest.raises(s3po.DownloadException) as caught:
            stream.read()
    assert caught.value.code == "PreconditionFailed"


# -- TLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["https"])
def test_a_tls_error_in_the_handshake_is_retried_as_botocore_would(proxy, caplog):
    # botocore's standard retry mode retries TLS errors (its SSLError is a
    # ConnectionError): a garbled handshake is as transient as a reset. s3po too.
    conn = make_connection(proxy.url, retries=3)
    conn.create_bucket(BUCKET)
    conn.client.close()  # no connection kept from creating the bucket: the next one shakes hands
    proxy.clear()
    proxy.garble_handshakes = 2
    assert conn.upload(BUCKET, "k", DATA).size == len(DATA)
    assert proxy.handshakes_garbled == 2
    assert proxy.count("PUT") == 1
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 2 and all("SSL" in message for message in retried), retried


@pytest.mark.parametrize("scheme", ["https"])
@pytest.mark.parametrize("kind, params", [("reset", {}), ("truncate", {"keep": 10, "close": "rst"}),
                                          ("drop_after_headers", {})])
def test_a_tls_connection_that_breaks_mid_answer_is_retried(wire_conn, proxy, kind, params):
    wire_conn.upload(BUCKET, "k", DATA)
    proxy.clear()
    proxy.add_fault(kind, count=2, method="GET", **params)
    assert wire_conn.download(BUCKET, "k") == DATA
    assert proxy.count("GET") == 3


@pytest.mark.parametrize("scheme", ["https"])
def test_a_certificate_that_does_not_verify_fails_at_once(proxy, caplog):
    untrusting = make_connection(proxy.url, verify=True)  # the system's CAs, not the test's
    with pytest.raises(s3po.S3POException, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        untrusting.upload(BUCKET, "k", b"x", retries=3)
    assert proxy.count() == 0
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # not retried
