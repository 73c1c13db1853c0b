"""What ``retries=N`` bounds, operation by operation, counted on the wire.

Every request goes out at most N+1 times; an operation made of several requests
(parts, ranges, a HEAD and a copy) bounds each of them so, never their product.
The README's table says the same.
"""

from __future__ import annotations

import os

import pytest
from s3po_fixtures import BUCKET, SMALL_PARTS, MiB, make_connection

import s3po

RETRIES = 2
ATTEMPTS = RETRIES + 1
SMALL = os.urandom(100_000)
BIG = os.urandom(12 * MiB)  # three 5 MiB parts or ranges


def failing_forever(proxy, method, **match):
    proxy.add_fault("status", count=1000, method=method, status=503, **match)


SINGLE_REQUEST_CALLS = {
    "upload": ("PUT", lambda conn: conn.upload(BUCKET, "new", SMALL, retries=RETRIES)),
    "download": ("GET", lambda conn: conn.download(BUCKET, "small", retries=RETRIES)),
    "head": ("HEAD", lambda conn: conn.head(BUCKET, "small", retries=RETRIES)),
    "exists": ("HEAD", lambda conn: conn.exists(BUCKET, "small", retries=RETRIES)),
    "delete": ("DELETE", lambda conn: conn.delete(BUCKET, "small", retries=RETRIES)),
    "delete_many": ("POST", lambda conn: conn.delete_many(BUCKET, ["small"], retries=RETRIES)),
    "open": ("GET", lambda conn: conn.open(BUCKET, "small", retries=RETRIES)),
}


@pytest.mark.parametrize("scheme", ["http"])
@pytest.mark.parametrize("call", sorted(SINGLE_REQUEST_CALLS))
def test_a_single_request_call_makes_at_most_retries_plus_one_requests(wire_conn, proxy, call):
    wire_conn.upload(BUCKET, "small", SMALL)
    proxy.clear()
    method, run = SINGLE_REQUEST_CALLS[call]
    failing_forever(proxy, method)
    with pytest.raises(s3po.S3POException):
        run(wire_conn)
    assert proxy.count(method) == ATTEMPTS


@pytest.mark.parametrize("scheme", ["http"])
def test_a_listing_retries_each_page_on_its_own(wire_conn, proxy):
    proxy.add_fault("status", count=RETRIES, method="GET", status=503)
    assert list(wire_conn.list(BUCKET)) == []
    assert proxy.count("GET") == ATTEMPTS
    proxy.clear()
    failing_forever(proxy, "GET")
    with pytest.raises(s3po.DownloadException):
        list(wire_conn.list(BUCKET))
    assert proxy.count("GET") == 4  # the Connection's own retries=3


@pytest.mark.parametrize("scheme", ["http"])
def test_each_part_of_a_multipart_upload_has_its_own_retries(proxy):
    conn = make_connection(proxy.url, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    proxy.clear()
    # Every part fails twice, then goes through: the upload succeeds, each part sent three times.
    for number in (1, 2, 3):
        proxy.add_fault("status", count=RETRIES, method="PUT", query_contains=f"partNumber={number}",
                        status=503)
    conn.upload(BUCKET, "big", BIG, retries=RETRIES)
    for number in (1, 2, 3):
        assert proxy.count("PUT", query_contains=f"partNumber={number}") == ATTEMPTS
    # A part that never goes through: N+1 times, then the upload is aborted (retried the same way).
    proxy.clear()
    failing_forever(proxy, "PUT", query_contains="partNumber=2")
    failing_forever(proxy, "DELETE")
    with pytest.raises(s3po.UploadException):
        conn.upload(BUCKET, "big2", BIG, retries=RETRIES)
    assert proxy.count("PUT", query_contains="partNumber=2") == ATTEMPTS
    assert proxy.count("DELETE") == ATTEMPTS


@pytest.mark.parametrize("scheme", ["http"])
def test_each_range_has_its_own_retries_and_a_whole_refetch_spends_one_of_each(proxy):
    conn = make_connection(proxy.url, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    conn.upload(BUCKET, "big", BIG)
    proxy.clear()
    failing_forever(proxy, "GET", header_contains=("Range", f"bytes={5 * MiB}-"))
    with pytest.raises(s3po.DownloadException):
        conn.download(BUCKET, "big", retries=RETRIES)
    ranges = [r.headers.get("Range") for r in proxy.requests if r.method == "GET"]
    assert ranges.count(f"bytes={5 * MiB}-{10 * MiB - 1}") == ATTEMPTS


@pytest.mark.parametrize("scheme", ["http"])
def test_a_stream_spends_one_retry_per_resume_over_its_whole_life(wire_conn, proxy):
    wire_conn.upload(BUCKET, "s", SMALL)
    proxy.clear()
    proxy.add_fault("truncate", count=1000, method="GET", keep=10_000)
    with pytest.raises(s3po.DownloadException):
        with wire_conn.open(BUCKET, "s", retries=RETRIES) as stream:
            stream.read()
    assert proxy.count("GET") == ATTEMPTS  # the first GET and RETRIES resumes


@pytest.mark.parametrize("scheme", ["http"])
def test_a_copy_bounds_its_head_and_its_copy_each(wire_conn, proxy):
    wire_conn.upload(BUCKET, "src", SMALL)
    proxy.clear()
    failing_forever(proxy, "PUT")
    with pytest.raises(s3po.UploadException):
        wire_conn.copy(BUCKET, "src", BUCKET, "dst", retries=RETRIES)
    assert (proxy.count("HEAD"), proxy.count("PUT")) == (1, ATTEMPTS)
    proxy.clear()
    failing_forever(proxy, "HEAD")
    with pytest.raises(s3po.UploadException):
        wire_conn.copy(BUCKET, "src", BUCKET, "dst", retries=RETRIES)
    assert (proxy.count("HEAD"), proxy.count("PUT")) == (ATTEMPTS, 0)
