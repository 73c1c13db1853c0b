"""Network faults over a real socket: exact attempt counts, integrity, nothing partial.

Every test talks to moto's server through the fault proxy, which breaks requests on
command and logs what reached the wire.
"""

import gzip
import hashlib
import io
import logging
import os

import pytest

import s3po
from s3po_fixtures import BUCKET, FAKE_SECRET, FAKE_TOKEN
from test_transfers import WriteOnlySink

DATA = os.urandom(200_000)


def object_path(key):
    return f"/{BUCKET}/{key}"


# -- exact attempt counts ---------------------------------------------------------------

FAULTS = [
    pytest.param("status", {"status": 503}, "SlowDown", id="503-SlowDown"),
    pytest.param("status", {"status": 500}, "InternalError", id="500-InternalError"),
    pytest.param("status", {"status": 502, "code": "BadGateway"}, "BadGateway", id="502"),
    pytest.param("reset", {}, None, id="connection-reset"),
]


@pytest.mark.parametrize("kind, params, code", FAULTS)
def test_upload_recovers_from_transient_faults(wire_conn, proxy, kind, params, code):
    proxy.add_fault(kind, count=2, method="PUT", **params)
    key = wire_conn.upload(BUCKET, "k", DATA)
    assert key.etag == hashlib.md5(DATA).hexdigest()
    assert proxy.count("PUT") == 3
    assert wire_conn.download(BUCKET, "k") == DATA


@pytest.mark.parametrize("kind, params, code", FAULTS)
def test_a_call_that_keeps_failing_reaches_the_server_exactly_retries_plus_one_times(
        wire_conn, proxy, kind, params, code):
    proxy.add_fault(kind, count=100, method="PUT", **params)
    with pytest.raises(s3po.UploadException) as caught:
        wire_conn.upload(BUCKET, "k", DATA, retries=2)
    assert proxy.count("PUT") == 3
    assert caught.value.code == code
    assert caught.value.__cause__ is not None
    assert "s3://s3po-test/k" in str(caught.value)
    proxy.clear()
    assert not wire_conn.exists(BUCKET, "k")


def test_the_connection_default_and_zero_retries(wire_conn, proxy):
    proxy.add_fault("status", count=100, method="GET", status=503)
    with pytest.raises(s3po.DownloadException):
        wire_conn.download(BUCKET, "k")
    assert proxy.count("GET") == 4  # the connection's retries=3
    proxy.clear()
    proxy.add_fault("status", count=100, method="GET", status=503)
    with pytest.raises(s3po.DownloadException):
        wire_conn.download(BUCKET, "k", retries=0)
    assert proxy.count("GET") == 1


@pytest.mark.parametrize("status, code", [(403, "AccessDenied"), (400, "InvalidArgument"),
                                          (404, "NoSuchKey"), (409, "Conflict")])
def test_client_errors_are_not_retried(wire_conn, proxy, status, code):
    proxy.add_fault("status", count=100, method="GET", status=status, code=code)
    with pytest.raises(s3po.DownloadException) as caught:
        wire_conn.download(BUCKET, "k")
    assert proxy.count("GET") == 1
    assert caught.value.code == code


def test_exists_is_false_only_on_404_and_raises_on_other_errors(wire_conn, proxy):
    proxy.add_fault("status", count=1, method="HEAD", status=404, code="NotFound")
    assert wire_conn.exists(BUCKET, "k") is False
    proxy.add_fault("status", count=1, method="HEAD", status=403, code="AccessDenied")
    with pytest.raises(s3po.DownloadException) as caught:
        wire_conn.exists(BUCKET, "k")
    assert not isinstance(caught.value, s3po.NotFound)
    assert proxy.count("HEAD", path_contains="/k") == 2


def test_listing_pages_are_retried(wire_conn, proxy):
    wire_conn.upload(BUCKET, "a", "1")
    proxy.clear()
    proxy.add_fault("status", count=2, method="GET", status=503)
    assert list(wire_conn.list(BUCKET)) == ["a"]
    assert proxy.count("GET") == 3


def test_each_retry_logs_one_warning_naming_call_attempt_and_cause(wire_conn, proxy, caplog):
    proxy.add_fault("status", count=2, method="PUT", status=503)
    with caplog.at_level(logging.DEBUG, logger="s3po"):
        wire_conn.upload(BUCKET, "logged", "x")
    warnings = [r for r in caplog.records if r.name.startswith("s3po") and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "upload s3://s3po-test/logged" in warnings[0].getMessage()
    assert "attempt 1 of 4" in warnings[0].getMessage()
    assert "attempt 2 of 4" in warnings[1].getMessage()
    assert "SlowDown" in warnings[0].getMessage()
    assert FAKE_SECRET not in caplog.text and FAKE_TOKEN not in caplog.text


# -- integrity on the way up --------------------------------------------------------------

def test_a_byte_flipped_on_the_way_up_is_caught_and_sent_again(wire_conn, proxy):
    proxy.add_fault("flip_request", count=1, method="PUT")
    key = wire_conn.upload(BUCKET, "k", DATA)
    assert proxy.count("PUT") == 2
    assert key.etag == hashlib.md5(DATA).hexdigest()
    assert wire_conn.download(BUCKET, "k") == DATA


def test_an_upload_that_stays_corrupt_fails_and_leaves_no_damaged_object(wire_conn, proxy):
    proxy.add_fault("flip_request", count=100, method="PUT")
    with pytest.raises(s3po.UploadException, match="MD5"):
        wire_conn.upload(BUCKET, "k", DATA, retries=1)
    assert proxy.count("PUT") == 2
    proxy.clear()
    assert not wire_conn.exists(BUCKET, "k")


def test_verify_etag_false_trusts_the_store(wire_conn, proxy):
    wire_conn.verify_etag = False
    proxy.add_fault("flip_request", count=1, method="PUT")
    wire_conn.upload(BUCKET, "k", DATA)
    assert proxy.count("PUT") == 1


def test_large_file_bodies_are_rewound_for_each_attempt(wire_conn, proxy, tmp_path):
    big = os.urandom(9 * 1024 * 1024)
    path = tmp_path / "big"
    path.write_bytes(big)
    proxy.add_fault("reset", count=1, method="PUT")
    proxy.add_fault("flip_request", count=1, method="PUT")
    key = wire_conn.upload_file(BUCKET, "big", path)
    assert proxy.count("PUT") == 3
    assert key.etag == hashlib.md5(big).hexdigest()
    assert wire_conn.download(BUCKET, "big") == big


# -- integrity on the way down -------------------------------------------------------------

@pytest.mark.parametrize("kind, params", [
    ("truncate", {}),
    ("truncate", {"keep": 0, "close": "rst"}),
    ("drop_after_headers", {}),
    ("flip", {}),
    ("flip", {"offset": 0}),
])
def test_damaged_downloads_are_retried_and_never_reach_the_caller(wire_conn, proxy, kind, params):
    wire_conn.upload(BUCKET, "k", DATA)
    proxy.clear()
    proxy.add_fault(kind, count=2, method="GET", **params)
    assert wire_conn.download(BUCKET, "k") == DATA
    assert proxy.count("GET") == 3


@pytest.mark.parametrize("kind", ["truncate", "flip"])
def test_retries_never_duplicate_bytes_in_the_callers_file(wire_conn, proxy, kind):
    wire_conn.upload(BUCKET, "k", DATA)
    proxy.clear()
    proxy.add_fault(kind, count=2, method="GET")
    seekable = io.BytesIO()
    wire_conn.download(BUCKET, "k", seekable)
    assert seekable.getvalue() == DATA
    proxy.add_fault(kind, count=2, method="GET")
    one_way = WriteOnlySink()
    wire_conn.download(BUCKET, "k", one_way)
    assert bytes(one_way.received) == DATA


@pytest.mark.parametrize("kind", ["truncate", "flip"])
def test_a_download_that_stays_damaged_fails_and_leaves_the_file_as_it_was(wire_conn, proxy, kind):
    wire_conn.upload(BUCKET, "k", DATA)
    proxy.clear()
    proxy.add_fault(kind, count=100, method="GET")
    seekable = io.BytesIO(b"before")
    seekable.seek(0, io.SEEK_END)
    with pytest.raises(s3po.DownloadException):
        wire_conn.download(BUCKET, "k", seekable)
    assert seekable.getvalue() == b"before"
    assert proxy.count("GET") == 4
    one_way = WriteOnlySink()
    with pytest.raises(s3po.DownloadException):
        wire_conn.download(BUCKET, "k", one_way, retries=1)
    assert one_way.received == b""


def test_download_file_leaves_no_partial_file(wire_conn, proxy, tmp_path):
    wire_conn.upload(BUCKET, "k", DATA)
    proxy.clear()
    proxy.add_fault("truncate", count=100, method="GET")
    target = tmp_path / "sub" / "out.bin"
    with pytest.raises(s3po.DownloadException):
        wire_conn.download_file(BUCKET, "k", target)
    assert os.listdir(tmp_path) == []
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"old")
    with pytest.raises(s3po.DownloadException):
        wire_conn.download_file(BUCKET, "k", existing)
    assert existing.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["existing.bin"]
    proxy.clear()
    proxy.add_fault("truncate", count=1, method="GET")
    wire_conn.download_file(BUCKET, "k", existing)
    assert existing.read_bytes() == DATA


def test_a_gzip_body_cut_in_transit_is_retried(wire_conn, proxy):
    text = b"compressible " * 50_000
    wire_conn.upload(BUCKET, "z", text, compress="gzip")
    proxy.clear()
    proxy.add_fault("truncate", count=1, method="GET")
    proxy.add_fault("flip", count=1, method="GET")
    assert wire_conn.download(BUCKET, "z") == text
    assert proxy.count("GET") == 3


def test_a_stored_corrupt_gzip_body_fails_at_once_without_half_decoded_bytes(wire_conn, proxy):
    good = gzip.compress(b"x" * 100_000)
    damaged = good[:20] + bytes(b ^ 0xFF for b in good[20:40]) + good[40:]
    wire_conn.upload(BUCKET, "bad.gz", damaged, headers={"Content-Encoding": "gzip"})
    proxy.clear()
    destination = io.BytesIO()
    with pytest.raises(s3po.DownloadException, match="gzip"):
        wire_conn.download(BUCKET, "bad.gz", destination)
    assert destination.getvalue() == b""
    assert proxy.count("GET") == 1  # its MD5 matches: retrying would not help
    assert wire_conn.download(BUCKET, "bad.gz", decompress=False) == damaged


# -- streaming with resume -------------------------------------------------------------------

def test_open_resumes_with_a_range_pinned_to_the_etag(wire_conn, proxy):
    wire_conn.upload(BUCKET, "s", DATA)
    etag = hashlib.md5(DATA).hexdigest()
    proxy.clear()
    proxy.add_fault("truncate", count=1, method="GET", keep=70_000)
    with wire_conn.open(BUCKET, "s") as stream:
        assert stream.read() == DATA
    gets = [r for r in proxy.requests if r.method == "GET"]
    assert len(gets) == 2
    headers = {name.lower(): value for name, value in gets[1].headers.items()}
    assert headers["range"] == "bytes=70000-"
    assert headers["if-match"].strip('"') == etag


def test_open_gives_up_after_the_retries_and_decompresses_across_resumes(wire_conn, proxy):
    text = b"stream me " * 100_000
    wire_conn.upload(BUCKET, "z", text, compress="gzip")
    proxy.clear()
    proxy.add_fault("truncate", count=2, method="GET")
    with wire_conn.open(BUCKET, "z") as stream:
        assert stream.read() == text
    proxy.clear()
    proxy.add_fault("truncate", count=100, method="GET")
    with pytest.raises(s3po.DownloadException), wire_conn.open(BUCKET, "z", retries=2) as stream:
        stream.read()
    assert proxy.count("GET") == 3


def test_open_detects_a_flipped_byte_at_the_end(wire_conn, proxy):
    wire_conn.upload(BUCKET, "s", DATA)
    proxy.clear()
    proxy.add_fault("flip", count=1, method="GET")
    with pytest.raises(s3po.DownloadException, match="ETag"), wire_conn.open(BUCKET, "s") as stream:
        stream.read()


def test_open_refuses_to_splice_a_changed_object(wire_conn, proxy):
    wire_conn.upload(BUCKET, "s", DATA)
    proxy.clear()
    proxy.add_fault("truncate", count=1, method="GET", keep=100_000)
    with wire_conn.open(BUCKET, "s") as stream:
        assert stream.read(50_000) == DATA[:50_000]
        wire_conn.upload(BUCKET, "s", os.urandom(len(DATA)))
        with pytest.raises(s3po.DownloadException) as caught:
            stream.read()
    assert caught.value.code in ("PreconditionFailed", "412")


# -- bad input is refused before any request ----------------------------------------------------

BAD_CALLS = [
    pytest.param(lambda c: c.upload(BUCKET, "k", 12345), TypeError, "data", id="int-data"),
    pytest.param(lambda c: c.upload(BUCKET, "k", ["a"]), TypeError, "list", id="list-data"),
    pytest.param(lambda c: c.upload("Bad_Bucket", "k", "x"), ValueError, "Bad_Bucket", id="bucket-case"),
    pytest.param(lambda c: c.upload("ab", "k", "x"), ValueError, "'ab'", id="bucket-short"),
    pytest.param(lambda c: c.upload("192.168.1.1", "k", "x"), ValueError, "IP", id="bucket-ip"),
    pytest.param(lambda c: c.upload(BUCKET, "", "x"), ValueError, "key", id="empty-key"),
    pytest.param(lambda c: c.upload(BUCKET, "k" * 1025, "x"), ValueError, "1024", id="long-key"),
    pytest.param(lambda c: c.upload(BUCKET, None, "x"), TypeError, "key", id="none-key"),
    pytest.param(lambda c: c.upload(BUCKET, "k", "x", headers={"X-Bogus": "1"}), ValueError, "X-Bogus",
                 id="unknown-header"),
    pytest.param(lambda c: c.upload(BUCKET, "k", "x", compress="lz4"), ValueError, "lz4", id="lz4"),
    pytest.param(lambda c: c.upload(BUCKET, "k", "x", compress="gzip", headers={"Content-Encoding": "br"}),
                 ValueError, "Content-Encoding", id="encoding-conflict"),
    pytest.param(lambda c: c.upload(BUCKET, "k", "x", retries=-1), ValueError, "retries", id="negative-retries"),
    pytest.param(lambda c: c.download(BUCKET, "k", retries=-2), ValueError, "retries", id="download-retries"),
    pytest.param(lambda c: c.upload_file(BUCKET, "k", "/no/such/file.txt"), FileNotFoundError,
                 "/no/such/file.txt", id="missing-file"),
    pytest.param(lambda c: c.upload_file(BUCKET, "k", 42), TypeError, "path", id="path-type"),
    pytest.param(lambda c: c.download(BUCKET, "k", fobj="not a file"), TypeError, "fobj", id="fobj"),
    pytest.param(lambda c: list(c.list("UPPER")), ValueError, "UPPER", id="list-bucket"),
    pytest.param(lambda c: c.list(BUCKET, delimiter=""), ValueError, "delimiter", id="empty-delimiter"),
    pytest.param(lambda c: c.delete_many(BUCKET, "abc"), TypeError, "keys", id="delete-many-str"),
    pytest.param(lambda c: c.copy(BUCKET, "a", "x", "b"), ValueError, "'x'", id="copy-bucket"),
    pytest.param(lambda c: c.batch(0), ValueError, "poolsize", id="poolsize"),
]


@pytest.mark.parametrize("call, error, named", BAD_CALLS)
def test_bad_input_is_refused_before_any_request(wire_conn, proxy, call, error, named):
    with pytest.raises(error) as caught:
        call(wire_conn)
    assert named in str(caught.value)
    assert proxy.requests == []


def test_a_missing_key_or_bucket_is_not_found_in_one_request(wire_conn, proxy):
    with pytest.raises(s3po.NotFound, match="s3://s3po-test/missing"):
        wire_conn.download(BUCKET, "missing")
    with pytest.raises(s3po.NotFound, match="no such bucket"):
        wire_conn.download("missing-bucket-s3po", "k")
    assert proxy.count() == 2


def test_small_puts_skip_expect_continue_and_large_ones_keep_it(wire_conn, proxy, tmp_path):
    wire_conn.upload(BUCKET, "small", b"x" * 100_000)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(9 * 1024 * 1024))
    wire_conn.upload_file(BUCKET, "big", big)
    expects = {r.path: r.headers.get("Expect") for r in proxy.requests if r.method == "PUT"}
    assert expects == {object_path("small"): None, object_path("big"): "100-continue"}


def test_open_refuses_a_resume_that_ignored_the_range(wire_conn, proxy):
    from botocore.stub import Stubber  # the second answer: a whole body, not a range

    wire_conn.upload(BUCKET, "s", DATA)
    proxy.clear()
    proxy.add_fault("truncate", count=1, method="GET", keep=10_000)
    stream = wire_conn.open(BUCKET, "s")
    assert stream.read(5_000) == DATA[:5_000]
    etag = wire_conn.head(BUCKET, "s").etag
    with Stubber(wire_conn.conn) as stub:
        stub.add_response("get_object", {"Body": io.BytesIO(DATA), "ContentLength": len(DATA),
                                         "ETag": f'"{etag}"'})
        with pytest.raises(s3po.DownloadException, match="asked for bytes from 10000"):
            stream.read()
    stream.close()


@pytest.mark.parametrize("call", ["list", "delete_many", "copy"])
def test_an_answer_cut_right_after_its_headers_is_retried_not_read_as_empty(wire_conn, proxy, call):
    # botocore parses an empty body as an empty answer: a listing of nothing, a
    # DeleteObjects that deleted nothing. s3po checks the body against Content-Length.
    wire_conn.upload(BUCKET, "a", b"x")
    proxy.clear()
    if call == "list":
        proxy.add_fault("drop_after_headers", count=1, method="GET")
        assert list(wire_conn.list(BUCKET)) == ["a"]
    elif call == "delete_many":
        proxy.add_fault("drop_after_headers", count=1, method="POST")
        assert wire_conn.delete_many(BUCKET, ["a"]) == 1
    else:
        proxy.add_fault("drop_after_headers", count=1, method="PUT")
        assert wire_conn.copy(BUCKET, "a", BUCKET, "b").etag
        assert proxy.count("HEAD") == 1  # the source's size and ETag, asked once
    assert len([r for r in proxy.requests if r.method != "HEAD"]) == 2
